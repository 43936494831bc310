/** Sizes and durations of one benchmark run. */
export interface Plan {
  mode: 'quick' | 'full';
  /** Repeats of every measurement; figures report their median, minimum and maximum. */
  repeats: number;
  /** Repeats of the memory and rollout figures, whose single runs take minutes on the full plan. */
  slowRepeats: number;
  /** Replica counts the product runs with. */
  replicaCounts: number[];
  /** Heartbeat interval of the idle devices in the memory figure, in seconds. */
  heartbeatS: number;
  /** Fleet sizes at which memory per device is read; the last step also gives the connect rate. */
  memorySteps: number[];
  /** How long a memory reading waits for V8's memory reducer after a full GC, in ms (see lowestMemory). */
  memoryReadingMs: number;
  /** Devices connected and closed once before the memory baseline, and the baseline readings at most. */
  memoryWarmUpDevices: number;
  memoryBaselineRounds: number;
  /** Fleet sizes of the fan-out figure. */
  fanoutSteps: number[];
  /** Devices sending messages in the ingest figure, and how long each ingest measurement runs. */
  ingestDevices: number;
  ingestMs: number;
  /** Devices and patch size of the rollout figure. */
  rolloutDevices: number;
  patchBytes: number;
  /** HTTP downloads running at once per load generator, in the rollout and in its yardstick alike. */
  downloadSlots: number;
}

export function makePlan(quick: boolean): Plan {
  if (quick) {
    return {
      mode: 'quick',
      repeats: 1,
      slowRepeats: 1,
      replicaCounts: [1, 2],
      heartbeatS: 2,
      memorySteps: [1000, 3000],
      memoryReadingMs: 9000,
      memoryWarmUpDevices: 1000,
      memoryBaselineRounds: 2,
      fanoutSteps: [1000, 2000],
      ingestDevices: 1000,
      ingestMs: 1500,
      rolloutDevices: 300,
      patchBytes: 1024 * 1024,
      downloadSlots: 64,
    };
  }
  return {
    mode: 'full',
    repeats: 3,
    slowRepeats: 2,
    replicaCounts: [1, 2],
    heartbeatS: 5,
    memorySteps: [1000, 5000, 15_000],
    memoryReadingMs: 9000,
    memoryWarmUpDevices: 2000,
    memoryBaselineRounds: 5,
    fanoutSteps: [1000, 5000, 10_000],
    ingestDevices: 2000,
    ingestMs: 4000,
    rolloutDevices: 10_000,
    patchBytes: 1024 * 1024,
    downloadSlots: 64,
  };
}
