/**
 * A Sentinel that answers what the test says: a small RESP server on
 * loopback. `SENTINEL get-master-addr-by-name` gets {@link FakeSentinel.primary}
 * (any value: a real address, nil, an empty array, a port out of range...);
 * `AUTH`, `CLIENT`, `PING` get what a Sentinel would say; anything else an
 * error. It is closed when the test file ends.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { after } from 'node:test';

/** A RESP value: nil, a bulk string, an integer, an array, or an error reply. */
export type Resp = null | string | number | readonly Resp[] | { readonly error: string };

/** RESP encoding of `value`. */
export function encodeResp(value: Resp): string {
  if (value === null) return '*-1\r\n';
  if (typeof value === 'number') return `:${value}\r\n`;
  if (typeof value === 'string') return `$${Buffer.byteLength(value)}\r\n${value}\r\n`;
  if ('error' in value) return `-${value.error}\r\n`;
  return `*${value.length}\r\n${value.map(encodeResp).join('')}`;
}

/** The commands in `buffer` (arrays of bulk strings), and how many bytes they took. */
function parseCommands(buffer: Buffer): { commands: string[][]; used: number } {
  const text = buffer.toString('latin1');
  const commands: string[][] = [];
  let at = 0;
  for (;;) {
    const start = at;
    if (text[at] !== '*') break;
    const headerEnd = text.indexOf('\r\n', at);
    if (headerEnd < 0) break;
    const count = Number(text.slice(at + 1, headerEnd));
    at = headerEnd + 2;
    const args: string[] = [];
    let complete = true;
    for (let i = 0; i < count; i++) {
      const lengthEnd = text.indexOf('\r\n', at);
      if (text[at] !== '$' || lengthEnd < 0) {
        complete = false;
        break;
      }
      const length = Number(text.slice(at + 1, lengthEnd));
      if (lengthEnd + 2 + length + 2 > text.length) {
        complete = false;
        break;
      }
      args.push(text.slice(lengthEnd + 2, lengthEnd + 2 + length));
      at = lengthEnd + 2 + length + 2;
    }
    if (!complete) {
      at = start;
      break;
    }
    commands.push(args);
  }
  return { commands, used: at };
}

/**
 * @example
 * const sentinel = await FakeSentinel.start(['127.0.0.1', String(redis.port)]);
 * sentinel.primary = []; // from now on, an answer Node cannot connect to
 */
export class FakeSentinel {
  /** What `SENTINEL get-master-addr-by-name` is answered. */
  primary: Resp;
  /** How many times the primary's address was asked. */
  asked = 0;
  readonly #sockets = new Set<Socket>();

  private constructor(
    readonly server: Server,
    readonly port: number,
    primary: Resp,
  ) {
    this.primary = primary;
  }

  /** `127.0.0.1:<port>`, for REDIS_SENTINELS. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async start(primary: Resp): Promise<FakeSentinel> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const sentinel = new FakeSentinel(server, (server.address() as { port: number }).port, primary);
    server.on('connection', (socket) => sentinel.#serve(socket));
    after(() => sentinel.close());
    return sentinel;
  }

  close(): void {
    for (const socket of this.#sockets) socket.destroy();
    this.server.close();
  }

  #serve(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => {});
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      const { commands, used } = parseCommands(pending);
      pending = pending.subarray(used);
      for (const command of commands) socket.write(encodeResp(this.#answer(command)));
    });
  }

  #answer([name = '', ...args]: string[]): Resp {
    const command = name.toUpperCase();
    const sub = (args[0] ?? '').toUpperCase();
    if (command === 'SENTINEL' && sub === 'GET-MASTER-ADDR-BY-NAME') {
      this.asked++;
      return this.primary;
    }
    if (command === 'SENTINEL' && sub === 'SENTINELS') return [];
    if (command === 'AUTH' || command === 'CLIENT' || command === 'SELECT') return 'OK';
    if (command === 'PING') return 'PONG';
    return { error: `ERR unknown command '${name}'` };
  }
}
