/** The broker's own name and version, from its package.json. */
import { readFileSync } from 'node:fs';

interface PackageJson {
  name: string;
  version: string;
}

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as PackageJson;

/** `spicy-action`, as package.json says. */
export const NAME: string = pkg.name;
/** The package version, as package.json says. */
export const VERSION: string = pkg.version;
