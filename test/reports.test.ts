/**
 * Error reports as the platform's real reporter sends them: the CCNQ logging
 * library `tangible`, over socket.io-client 2.x, emits `report_dev`,
 * `report_ops` and `report_csr` with {stamp, now, host, session, application,
 * method, event, msg, data, logging}. The broker forwards them unchanged to
 * the `support` bus.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { startBroker } from './helpers/broker.ts';
import { closeAll, connect, flush, GENERATIONS, type TestClient } from './helpers/clients.ts';
import { tangibleReport } from './helpers/payloads.ts';

describe('error reports from tangible', () => {
  const open: TestClient[] = [];
  after(() => closeAll(open));

  it('reach every subscriber of support unchanged, from a 2.x reporter, for every generation', async () => {
    const broker = await startBroker();
    const reporter = await connect('v2', broker.url);
    const subscribers = await Promise.all(GENERATIONS.map((g) => connect(g, broker.url)));
    open.push(reporter, ...subscribers);
    // Dashboards subscribe with `configure`, as docs/protocol.md#configure shows, or `join`.
    await subscribers[0]!.ack('join', 'support');
    await subscribers[1]!.ack('configure', { support: true });
    await subscribers[2]!.ack('configure', { support: true });

    const sent = (['dev', 'ops', 'csr'] as const).map((method, n) => [`report_${method}`, tangibleReport(method, n)] as const);
    for (const [event, report] of sent) reporter.emit(event, report);
    await flush(reporter, subscribers);

    for (const subscriber of subscribers) {
      for (const [event, report] of sent) {
        assert.deepEqual(subscriber.payloads(event), [report], `${subscriber.generation} got ${event} once, unchanged`);
        const got = subscriber.payloads(event)[0] as Record<string, unknown>;
        assert.deepEqual(Object.keys(got).sort(), ['application', 'data', 'event', 'host', 'logging', 'method', 'msg', 'now', 'session', 'stamp']);
      }
    }
    // The reporter did not subscribe: reports are not echoed to it.
    assert.equal(reporter.count('report_ops'), 0);
  });
});
