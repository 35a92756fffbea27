/** Free ports on loopback, for servers that cannot report one they picked (redis-server). */
import { createServer } from 'node:net';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago.
 *
 * @example
 * const port = await freePort(); // nothing listens there: an unreachable Redis
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
