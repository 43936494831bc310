import type { FigureReport, TargetResult } from './figures.ts';

function ratioTo(figure: FigureReport, yardstick: string): number {
  const found = figure.yardsticks.find((y) => y.name === yardstick);
  if (!found) throw new Error(`figure ${figure.id} has no yardstick ${yardstick}`);
  return found.ratio.median;
}

/**
 * Returns the check of a figure's target, or null for figures without one (other fleet sizes, two
 * replicas). Targets apply to one replica and are checked on medians.
 */
export function targetFor(figure: FigureReport): ((figure: FigureReport) => TargetResult) | null {
  if (figure.replicas !== 1) return null;
  const kind = figure.id.split('.')[0];
  if (kind === 'memory' && figure.devices === 15_000) {
    return (f) => ({ text: '≤ 2 KB per device', met: f.value.median <= 2 });
  }
  if (kind === 'fanout' && figure.devices === 10_000) {
    return (f) => {
      const bare = ratioTo(f, 'bare uWS publish');
      const mosquitto = ratioTo(f, 'Mosquitto QoS 0');
      return { text: '≤ 1.5× bare uWS and < Mosquitto', met: bare <= 1.5 && mosquitto < 1 };
    };
  }
  if (kind === 'ingest') {
    return (f) => ({
      text: '≥ 2× uWS + HSET, no status lost',
      met: ratioTo(f, 'uWS + HSET per message') >= 2 && f.details.lostStatuses === 0,
    });
  }
  if (kind === 'rollout' && figure.devices === 10_000) {
    return (f) => ({ text: '≤ 1.1× direct download', met: ratioTo(f, 'direct download') <= 1.1 });
  }
  return null;
}
