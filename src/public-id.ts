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

/** Bytes of the HMAC a public id keeps: 12 bytes, 96 bits, 16 characters of base64url. */
const PUBLIC_ID_BYTES = 12;
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
    // Encoding only the bytes kept gives a flat 16-character string: a slice of the whole digest's
    // text would keep that text alive as long as the id (V8 slices strings of 13 characters or more).
    return createHmac('sha256', this.#key).update(socketId).digest().toString('base64url', 0, PUBLIC_ID_BYTES);
  }
}
