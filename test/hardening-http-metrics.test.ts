/**
 * Metric labels clients cannot multiply (docs/observability.md#get-metrics): any client
 * may register routes, so registered event names get a label of their own
 * only up to MAX_METRIC_EVENTS; the rest are counted together as `(other)`,
 * in `spicy_action_events_received_total` and in the `msg` of
 * `spicy_action_notify_requests_total` alike.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { OTHER_LABEL, UNROUTED_LABEL } from '../src/http/metrics.ts';
import { DEFAULT_LIMITS } from '../src/limits.ts';
import { DEFAULT_ROUTES } from '../src/routes.ts';
import { DEFAULT_SETTINGS, loadSettings, SettingsError } from '../src/settings.ts';
import { notify, request, startBroker } from './helpers/broker.ts';
import { closeAll, connect, type TestClient } from './helpers/clients.ts';
import { parseMetrics, type Metrics } from './helpers/metrics.ts';

const open: TestClient[] = [];
afterEach(() => closeAll(open.splice(0)));

async function scrape(url: string): Promise<Metrics> {
  const answer = await request(`${url}/metrics`);
  assert.equal(answer.status, 200);
  return parseMetrics(answer.body as string);
}

/** Registers `names` on the `calls` bus, emits each once, and waits until a listener in `calls` has them all. */
async function registerAndEmit(url: string, names: readonly string[]): Promise<void> {
  const [sender, listener] = await Promise.all([connect('v4', url), connect('v4', url)]);
  open.push(sender, listener);
  assert.equal(await listener.ack('join', 'calls'), true);
  for (const event of names) assert.deepEqual(await sender.ack('register', { event, default_room: 'calls' }), { ok: true, event, bus: 'calls' });
  for (const event of names) sender.emit(event, { n: 1 });
  const deadline = Date.now() + 10_000;
  while (names.some((event) => listener.count(event) === 0)) {
    assert.ok(Date.now() < deadline, 'every event reached the listener');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Label values of `event` on the received counter that are not built-in routes. */
function registeredLabels(metrics: Metrics): string[] {
  return metrics
    .all('spicy_action_events_received_total')
    .map((s) => s.labels.event as string)
    .filter((event) => !DEFAULT_ROUTES.has(event));
}

describe('event labels', () => {
  it('name the first MAX_METRIC_EVENTS registered events and count the rest as (other), built-in routes always named', async () => {
    const broker = await startBroker({ maxMetricEvents: 3 });
    const names = Array.from({ length: 8 }, (_, i) => `dialer:${i}`);
    await registerAndEmit(broker.url, names);
    const caller = await connect('v2', broker.url);
    open.push(caller);
    caller.emit('call', { state: 'end' });
    assert.deepEqual((await notify(broker.url, 'dialer:0', { via: 'notify' })).body, { ok: true });
    assert.deepEqual((await notify(broker.url, 'dialer:7', { via: 'notify' })).body, { ok: true });
    assert.deepEqual((await notify(broker.url, 'never-registered', {})).body, { ok: false, ignore: true });

    let metrics = await scrape(broker.url);
    for (let i = 0; metrics.value('spicy_action_events_received_total', { event: 'call' }) === 0 && i < 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      metrics = await scrape(broker.url);
    }
    assert.deepEqual(registeredLabels(metrics).sort(), ['dialer:0', 'dialer:1', 'dialer:2', OTHER_LABEL].sort());
    assert.equal(metrics.value('spicy_action_events_received_total', { event: 'dialer:0' }), 2, 'from the socket and /_notify');
    assert.equal(metrics.value('spicy_action_events_received_total', { event: OTHER_LABEL }), 6, 'dialer:3 to 7, and dialer:7 from /_notify');
    assert.equal(metrics.value('spicy_action_events_received_total', { event: 'call' }), 1);

    const msgs = metrics.all('spicy_action_notify_requests_total').map((s) => s.labels.msg).sort();
    assert.deepEqual(msgs, ['dialer:0', OTHER_LABEL, UNROUTED_LABEL].sort());
    assert.equal(metrics.value('spicy_action_notify_requests_total', { msg: OTHER_LABEL, status: '200' }), 1);
  });

  it(`stay within the default bound (${DEFAULT_LIMITS.maxMetricEvents}) when a client registers more`, async () => {
    const broker = await startBroker();
    const names = Array.from({ length: DEFAULT_LIMITS.maxMetricEvents + 50 }, (_, i) => `flood:${i}:${'x'.repeat(200)}`);
    await registerAndEmit(broker.url, names);
    const metrics = await scrape(broker.url);
    const labels = registeredLabels(metrics);
    assert.equal(labels.length, DEFAULT_LIMITS.maxMetricEvents + 1, 'the bound, and (other)');
    assert.equal(metrics.value('spicy_action_events_received_total', { event: OTHER_LABEL }), 50);
    assert.equal(metrics.value('spicy_action_routes'), DEFAULT_ROUTES.size + names.length, 'the routes themselves are all there');
  });
});

describe('MAX_METRIC_EVENTS', () => {
  it('is a setting, 100 by default, 0 naming no registered event', () => {
    assert.equal(DEFAULT_SETTINGS.maxMetricEvents, 100);
    assert.equal(loadSettings(['--max-metric-events', '5'], {}).maxMetricEvents, 5);
    assert.equal(loadSettings([], { MAX_METRIC_EVENTS: '0' }).maxMetricEvents, 0);
    assert.throws(() => loadSettings(['--max-metric-events=lots'], {}), (error: unknown) => error instanceof SettingsError && /^--max-metric-events: expected a whole number/.test(error.message));
  });
});
