import type { Scenario } from '../scenario.ts';
import { bucketDown } from './bucket-down.ts';
import { clockSkew } from './clock-skew.ts';
import { slowDevice } from './slow-device.ts';
import { messyMessages } from './messy-messages.ts';
import { reconnectStorm } from './reconnect-storm.ts';
import { redisDownAtStart } from './redis-down-at-start.ts';
import { redisRestartAof, redisRestartEmpty } from './redis-restart.ts';
import { replicaSigkill, replicaSigterm } from './replica-stop.ts';

/** Every scenario of `fleet chaos`, in the order they run. */
export const SCENARIOS: Scenario[] = [replicaSigkill, replicaSigterm, redisRestartAof, redisRestartEmpty, redisDownAtStart, bucketDown, clockSkew, reconnectStorm, messyMessages, slowDevice];
