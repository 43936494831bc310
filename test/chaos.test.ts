import test from 'ava';
import { runScenario } from '../chaos/run.ts';
import { SCENARIOS } from '../chaos/scenarios/index.ts';

// Short versions of the `fleet chaos` scenarios: each starts its own redis-server, S3 store, replicas and
// HAProxy and injects its fault into a small fleet. They run one at a time, so the faults of one scenario
// (a killed Redis, a stopped store) never meet another's processes, and the box is not overloaded.
const DEVICES = 12;

for (const scenario of SCENARIOS) {
  test.serial(`chaos: ${scenario.name}`, async (t) => {
    const result = await runScenario(scenario, DEVICES, (message) => t.log(message));
    t.is(result.error, undefined, result.error);
    t.true(result.checks.length > 0, 'the scenario ran no check');
    for (const check of result.checks) t.true(check.ok, `${check.name}: ${check.detail}`);
    if (result.logDir) t.log(`replica logs kept in ${result.logDir}`);
  });
}
