import { pairedRatios, summarize, type Summary } from './stats.ts';

/** Repeated measurements of a yardstick: a bare program doing the least the product has to do. */
export interface YardstickSeries {
  name: string;
  values: number[];
}

/** Repeated measurements of one figure of the product, with the yardsticks measured beside it. */
export interface FigureSeries {
  id: string;
  title: string;
  unit: string;
  /** Whether a lower or a higher value is better; ratios are product / yardstick either way. */
  better: 'lower' | 'higher';
  devices: number | null;
  replicas: number | null;
  values: number[];
  yardsticks: YardstickSeries[];
  /** Facts about the run that qualify the figure, such as lost statuses. */
  details: Record<string, number | string>;
}

export interface TargetResult {
  text: string;
  met: boolean;
}

export interface FigureReport {
  id: string;
  title: string;
  unit: string;
  better: 'lower' | 'higher';
  devices: number | null;
  replicas: number | null;
  value: Summary;
  yardsticks: { name: string; value: Summary; ratio: Summary }[];
  target: TargetResult | null;
  details: Record<string, number | string>;
}

export function reportFigure(series: FigureSeries, target: ((figure: FigureReport) => TargetResult) | null): FigureReport {
  const report: FigureReport = {
    id: series.id,
    title: series.title,
    unit: series.unit,
    better: series.better,
    devices: series.devices,
    replicas: series.replicas,
    value: summarize(series.values),
    yardsticks: series.yardsticks.map((y) => ({
      name: y.name,
      value: summarize(y.values),
      ratio: summarize(pairedRatios(series.values, y.values)),
    })),
    target: null,
    details: series.details,
  };
  report.target = target ? target(report) : null;
  return report;
}

/** Devices as a short label: 1000 → 1k, 15000 → 15k. */
export function deviceLabel(devices: number): string {
  return devices % 1000 === 0 ? `${devices / 1000}k` : String(devices);
}
