/**
 * One load run against `POST /_notify`, shared by the bench's HTTP scenario
 * and bench/http-ab.ts.
 */
import type { HttpCommand, HttpReport } from './messages.ts';
import { forkWorker, type ServerProc } from './procs.ts';

/**
 * Runs autocannon once, `connections` keep-alive connections posting `body`
 * to `/_notify/report_ops` of `server`, and measures the server's CPU meanwhile.
 */
export async function httpRun(server: ServerProc, durationS: number, body: string, connections: number) {
  const worker = forkWorker<HttpCommand, HttpReport>('http.ts');
  try {
    const started = worker.next((r): r is Extract<HttpReport, { type: 'started' }> => r.type === 'started');
    const done = worker.next((r): r is Extract<HttpReport, { type: 'done' }> => r.type === 'done', durationS * 1000 + 60_000);
    worker.send({ type: 'run', url: `${server.url}/_notify/report_ops`, connections, durationS, body });
    await started;
    const a = await server.probe();
    const result = await done;
    const b = await server.probe();
    const cpu = b.cpu.user + b.cpu.system - a.cpu.user - a.cpu.system;
    return {
      rps: result.requests / result.durationS,
      p50: result.latency.p50,
      p99: result.latency.p99,
      cpuPerRequestUs: cpu / result.requests,
      serverCores: cpu / 1e6 / result.durationS,
      clientCores: (result.cpu.user + result.cpu.system) / 1e6 / result.durationS,
      non2xx: result.non2xx,
      errors: result.errors,
    };
  } finally {
    worker.child.kill('SIGKILL');
  }
}

