import test from 'ava';
import { createLogger } from '../runtime/logger.ts';
import { logSink } from './helpers/log-sink.ts';

test('secrets are redacted at the top level and one level down', (t) => {
  const { lines, stream } = logSink();
  const log = createLogger('info', 'test', stream);
  log.info({ url: 'http://s3/x?X-Amz-Signature=abc', token: 'fop_secret', nested: { authorization: 'Bearer x', secretKey: 'k' } }, 'msg');
  const entry = lines[0] ?? {};
  t.is(entry.url, '[redacted]');
  t.is(entry.token, '[redacted]');
  t.deepEqual(entry.nested, { authorization: '[redacted]', secretKey: '[redacted]' });
  t.false(JSON.stringify(lines).includes('abc'));
});

test('child loggers carry the ids they were bound with', (t) => {
  const { lines, stream } = logSink();
  const log = createLogger('info', 'test', stream).child({ connectionId: 'r-1', deviceId: 'cam_1' });
  log.child({ patchId: 'p.bin' }).warn('device failed to apply patch');
  t.like(lines[0], { connectionId: 'r-1', deviceId: 'cam_1', patchId: 'p.bin', level: 40 });
});
