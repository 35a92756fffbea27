/**
 * Public ids: what other clients and the logs see of a socket. A 1.x/2.x
 * client's socket id is its Engine.IO session id, which must stay between it
 * and the broker (src/guards/session-binding.ts); its public id names it
 * without granting anything: an HMAC of the socket id under a key drawn at
 * random when the process starts, so it cannot be turned back into the id.
 * It is the same for the same socket id on the same process (a 4.x client
 * that recovers its session keeps it), and differs from one broker process
 * to another.
 */
import { createHmac, randomBytes } from 'node:crypto';

/** Characters of a public id (base64url of the HMAC's first bytes: 96 bits). */
const PUBLIC_ID_LENGTH = 16;
/** Bytes of the process's HMAC key. */
const KEY_BYTES = 32;

/**
 * Derives public ids from socket ids under one random key.
 *
 * @example
 * const ids = new PublicIds();
 * ids.of('T3hUpq2Bj0e8Xw5cAAAB'); // 16 characters, the same on every call
 */
export class PublicIds {
  readonly #key: Buffer;

  constructor(key: Buffer = randomBytes(KEY_BYTES)) {
    this.#key = key;
  }

  /** The public id of the socket `socketId`. */
  of(socketId: string): string {
    return createHmac('sha256', this.#key).update(socketId).digest('base64url').slice(0, PUBLIC_ID_LENGTH);
  }
}
