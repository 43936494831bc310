/**
 * Preload module that moves this process's wall clock by FAKE_CLOCK_OFFSET_MS milliseconds (negative for a
 * clock that runs behind), for the fault scenario of a replica whose clock is off. Load it after tsx:
 * `node --import tsx --import ./local/clock-offset.ts ...`, or through NODE_OPTIONS.
 *
 * It replaces `Date.now()` and `new Date()` without arguments, which is what the AWS SDK, pino and the
 * replica read. `performance.now()`, `setTimeout` and `setInterval` run on the monotonic clock and are not
 * moved, just as a wrong wall clock does not move them on a real machine.
 */
const raw = process.env.FAKE_CLOCK_OFFSET_MS ?? '0';
const offsetMs = Number(raw);
if (!Number.isInteger(offsetMs)) {
  throw new Error(`FAKE_CLOCK_OFFSET_MS must be a whole number of milliseconds, got ${JSON.stringify(raw)}`);
}

if (offsetMs !== 0) {
  const RealDate = Date;
  const realNow = Date.now.bind(Date);

  class ShiftedDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(realNow() + offsetMs);
      else super(...(args as [string | number | Date]));
    }

    static override now(): number {
      return realNow() + offsetMs;
    }
  }

  globalThis.Date = ShiftedDate as DateConstructor;
}

export {};
