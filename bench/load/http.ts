/**
 * The HTTP load generator (forked by bench/run.ts): autocannon with
 * keep-alive connections POSTing a JSON body, in its own process so that
 * it does not share an event loop with the orchestrator.
 */
import autocannon from 'autocannon';
import type { HttpCommand, HttpReport } from '../messages.ts';

const send = (report: HttpReport): void => {
  process.send?.(report);
};

process.on('message', (command: HttpCommand) => {
  if (command.type !== 'run') return;
  const cpu0 = process.cpuUsage();
  send({ type: 'started' });
  autocannon(
    {
      url: command.url,
      method: 'POST',
      connections: command.connections,
      pipelining: 1,
      duration: command.durationS,
      headers: { 'content-type': 'application/json' },
      body: command.body,
    },
    (error, result) => {
      if (error) return send({ type: 'failed', error: error.message });
      send({
        type: 'done',
        requests: result.requests.total,
        non2xx: result.non2xx,
        errors: result.errors + result.timeouts,
        durationS: result.duration,
        latency: { p50: result.latency.p50, p99: result.latency.p99, mean: result.latency.mean },
        cpu: process.cpuUsage(cpu0),
      });
    },
  );
});
process.on('disconnect', () => process.exit(0));
