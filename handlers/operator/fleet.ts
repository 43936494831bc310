import type { ApiHandler } from './context.ts';

/** GET /v1/summary: device counts, firmware and model distribution, and per-patch state counts. */
export const fleetSummary: ApiHandler = async (ctx) => ({ status: 200, body: await ctx.summary() });
