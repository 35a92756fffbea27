/** Credentials files for tests. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashSecret, newSecret } from '../../src/guards/credentials.ts';
import { ROOT } from './broker.ts';

/**
 * The example file with a fresh secret for each client in place of its placeholder,
 * as `spicy-action credentials add` then `retire` would leave it.
 */
export function exampleWithSecrets(file: string): Record<string, string> {
  const example = JSON.parse(readFileSync(join(ROOT, 'deploy/credentials.example.json'), 'utf8')) as { clients: Record<string, { secrets: string[] }> };
  const secrets: Record<string, string> = {};
  for (const [name, client] of Object.entries(example.clients)) {
    secrets[name] = newSecret();
    client.secrets = [hashSecret(secrets[name])];
  }
  writeFileSync(file, JSON.stringify(example, null, 2));
  return secrets;
}

