// The package version, read once from package.json (one directory above both
// src/ under tsx and dist/ once compiled).
import { readFileSync } from 'node:fs';

export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
