/**
 * Engine.IO session ids are not credentials (docs/security.md#sessions-an-engineio-id-is-not-a-credential).
 *
 * After its handshake, an Engine.IO session is named by its `sid` alone:
 * every poll, every post and the WebSocket upgrade carry `?sid=`, and
 * Engine.IO hands whoever presents it the session's traffic. The token is
 * checked by Socket.IO when the socket connects to the namespace, once; for
 * a 1.x/2.x client the socket id *is* the `sid`, so anyone who learnt it
 * could upgrade that session to a WebSocket of their own without the token.
 *
 * With a token or credentials set, this guard checks every request to the
 * Engine.IO path that names a session (`sid`); handshakes go on to
 * Socket.IO's namespace middleware, which refuses a wrong or missing secret
 * with `unauthorized`:
 * - a session whose handshake presented a valid secret (the token or a
 *   credential's) is *bound* to that secret: every later request on that
 *   `sid` must present it again. socket.io-client
 *   1.x and 2.x repeat their query (and `extraHeaders`) on every request, so
 *   they always do; a 4.x client that also puts the token in an
 *   `Authorization` header (or its query) gets the same binding;
 * - a session whose handshake presented no token, or a wrong one (a 4.x
 *   client, whose token travels in the Socket.IO CONNECT packet instead; or
 *   a client about to be refused) is bound to the *route* it came by
 *   (`src/client-address.ts`): its peer address and the `X-Forwarded-For`
 *   chain, less the trusted proxies. Behind HAProxy every client's peer is
 *   HAProxy, but HAProxy appends each client's own address: a request that
 *   came another way must present the shared token (a named credential's
 *   secret does not do: it may be another client's). Its `sid` is never told
 *   to anyone but that client: the 4.x socket id is a different random
 *   value, the broker logs and sends neither (`shouted` carries a public
 *   id), and the shipped HAProxy configuration logs no query string.
 * A refused request gets `400` from Engine.IO (an upgrade has its socket
 * destroyed) and is counted as `unauthorized`.
 */
import createDebug from 'debug';
import type { BrokerServer } from '../broker.ts';
import type { Refusal } from '../protocol.ts';
import { TrustedProxies } from '../client-address.ts';
import { httpToken, UNAUTHORIZED } from './access.ts';
import { TOKEN_NAME } from './credentials.ts';
import { Keyring } from './keyring.ts';
import { engineSession, onEngineSession, useEngineMiddleware, type EngineRequest, type EngineSession } from '../internals.ts';

const debug = createDebug('spicy-action:session-binding');

/** What a session is bound to, from its handshake. */
type Binding = { readonly kind: 'secret'; readonly hash: string } | { readonly kind: 'route'; readonly route: string };

/**
 * Binds every Engine.IO session of `io` to the secret (or, without one, the
 * route) its handshake presented, as the module comment says; `access` is the
 * shared token or the {@link Keyring} in force; `proxies` are those whose
 * `X-Forwarded-For` is believed (for the route and the logs). Does nothing
 * when nothing is checked (the broker then trusts its network).
 *
 * @example
 * bindSessions(io, settings.token, new TrustedProxies(settings.trustProxy), (refusal) => telemetry.refused('engine.io', refusal));
 */
export function bindSessions(io: BrokerServer, access: string | undefined | Keyring, proxies: TrustedProxies, refused: (refusal: Refusal) => void): void {
  const keyring = Keyring.of(access);
  if (keyring.open) return;
  const principalOf = (req: { url?: string; headers: { authorization?: string } }) => keyring.authenticate(presented(req));
  const bindings = new WeakMap<EngineSession, Binding>();
  const presented = (req: { url?: string; headers: { authorization?: string } }): string | undefined => httpToken(req.url ?? '', req.headers.authorization);

  onEngineSession(io, (session) => {
    const { request } = session;
    const principal = principalOf(request);
    const binding: Binding = principal
      ? { kind: 'secret', hash: principal.hash }
      : { kind: 'route', route: proxies.route(session.remoteAddress, request.headers['x-forwarded-for']) };
    bindings.set(session, binding);
  });

  const refuse = (req: EngineRequest, next: (error?: Error) => void, why: string): void => {
    debug('refused an engine.io request from %s: %s', proxies.clientAddress(req.socket.remoteAddress, req.headers['x-forwarded-for']), why);
    refused(UNAUTHORIZED);
    next(new Error(UNAUTHORIZED.error));
  };

  useEngineMiddleware(io, (req, _res, next) => {
    const sid = req._query.sid;
    if (!sid) return next(); // a handshake: the namespace middleware decides (and tells the client why)
    const session = engineSession(io, sid);
    if (!session) return next(); // Engine.IO answers an unknown sid itself
    const binding = bindings.get(session);
    if (binding === undefined) return refuse(req, next, 'a session of unknown origin');
    const principal = principalOf(req);
    if (binding.kind === 'secret' && principal?.hash !== binding.hash) return refuse(req, next, 'a session bound to a secret, without it');
    const token = principal?.credential.name === TOKEN_NAME;
    if (binding.kind === 'route' && !token && proxies.route(req.socket.remoteAddress, req.headers['x-forwarded-for']) !== binding.route) {
      return refuse(req, next, 'a session bound to another address');
    }
    next();
  });
}
