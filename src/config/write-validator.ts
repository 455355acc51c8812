// Build step (`npm run build`, after tsc): writes the config schema's
// validator as ajv standalone code next to schema.js, so the running
// primary never loads ajv's compiler (schema.ts says why).
import { writeFileSync } from 'node:fs';
import { standaloneValidatorSource, VALIDATOR_FILE } from './schema.js';

writeFileSync(new URL(VALIDATOR_FILE, import.meta.url), standaloneValidatorSource());
