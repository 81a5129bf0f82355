import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkReplica, effectiveLagSeconds, withFindings, type ReplicaSample } from './replica-monitor.js';

const spec = { name: 'standby', tier: 'critical' as const, thresholds: { warnBytes: 1000, criticalBytes: 10_000, warnSeconds: 30, criticalSeconds: 300 } };
const streaming = (s: Partial<ReplicaSample>): ReplicaSample => ({ reachable: true, inRecovery: true, receiverStatus: 'streaming', lagBytes: 0, replayAgeSeconds: 0, ...s });

test('idle primary: an old last-replayed transaction with nothing left to replay is not lag', () => {
  assert.equal(effectiveLagSeconds({ lagBytes: 0, replayAgeSeconds: 86_400 }), 0);
  const f = checkReplica(spec, streaming({ lagBytes: 0, replayAgeSeconds: 86_400 }));
  assert.equal(f.severity, 'ok', f.message);
  assert.equal(f.details.lagSeconds, 0);
  // WAL waiting to be replayed: the replay age counts
  assert.equal(checkReplica(spec, streaming({ lagBytes: 10, replayAgeSeconds: 60 })).severity, 'warning');
  assert.equal(checkReplica(spec, streaming({ lagBytes: 10, replayAgeSeconds: 301 })).severity, 'critical');
});

test('thresholds in bytes, receiver state, reachability, promotion', () => {
  assert.equal(checkReplica(spec, streaming({ lagBytes: 1000 })).severity, 'ok');
  assert.equal(checkReplica(spec, streaming({ lagBytes: 1001 })).severity, 'warning');
  assert.equal(checkReplica(spec, streaming({ lagBytes: 10_001 })).severity, 'critical');
  const down = checkReplica(spec, streaming({ receiverStatus: null, primaryReachable: false, primaryError: 'connect ECONNREFUSED' }));
  assert.equal(down.severity, 'critical');
  assert.match(down.message, /WAL receiver is not running.*primary unreachable: connect ECONNREFUSED/);
  assert.equal(checkReplica(spec, streaming({ receiverStatus: 'waiting' })).severity, 'critical');
  assert.equal(checkReplica(spec, { reachable: false, error: 'timeout' }).severity, 'critical');
  assert.equal(checkReplica(spec, streaming({ inRecovery: false, receiverStatus: null })).severity, 'warning');
  // streaming but the primary (configured) is unreachable: a warning
  assert.equal(checkReplica(spec, streaming({ primaryReachable: false })).severity, 'warning');
  const f = checkReplica(spec, streaming({}));
  assert.equal(f.job, 'replica:standby');
  assert.equal(f.check, 'replica');
  const r = withFindings({ at: new Date(), state: 'ok', findings: [], jobs: {} }, [down]);
  assert.equal(r.state, 'critical');
  assert.equal(r.jobs['replica:standby'], 'critical');
});
