// Loading a config file: YAML → schema (defaults) → semantic checks →
// normalised, frozen Config. Every problem found is collected and thrown
// together as one ConfigError, each pointing at its line:col in the file.

import { dirname, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { ErrorCode } from '../errors.js';
import { ConfigError, describeValue, formatPath } from './errors.js';
import type { Issue } from './errors.js';
import { normalise } from './normalise.js';
import { MAX_WORKERS, validateSchema } from './schema.js';
import type { RawConfig } from './schema.js';
import { checkSemantics } from './semantic.js';
import { parseYaml } from './yaml-source.js';
import type { Config } from './types.js';

export interface LoadResult {
  config: Config;
}

export interface ConfigOverrides {
  /** `--workers N` from the command line; validated like `workers:`. */
  workers?: RawConfig['workers'];
}

export function loadConfig(file: string, overrides: ConfigOverrides = {}): LoadResult {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`${file}: cannot read: ${(err as Error).message}`], ErrorCode.ConfigUnreadable);
  }
  return parseConfigText(text, file, overrides);
}

export function parseConfigText(text: string, file: string, overrides: ConfigOverrides = {}): LoadResult {
  const source = parseYaml(text);
  if (source.syntaxErrors.length > 0) {
    throw new ConfigError(
      file,
      source.syntaxErrors.map((e) => `${file}:${e.pos.line}:${e.pos.col} syntax error: ${e.message}`),
    );
  }
  const placed = source.duplicateKeys.map((d) => ({ ...d.pos, text: `${formatPath(d.path)}: ${d.message}` }));
  const place = (issue: Issue) => ({ ...source.locate(issue.path, issue.at), text: `${formatPath(issue.path)}: ${issue.message}` });

  // The schema fills in defaults in place: work on a copy of what was parsed.
  const data = structuredClone(source.data);
  const schemaIssues = validateSchema(data);
  placed.push(...schemaIssues.map(place));
  if (data !== null && typeof data === 'object' && !Array.isArray(data)) {
    placed.push(...checkSemantics(data as RawConfig, schemaIssues, dirname(resolve(file))).map(place));
  }

  const errors = placed
    .sort((a, b) => a.line - b.line || a.col - b.col)
    .map((p) => `${file}:${p.line}:${p.col} ${p.text}`);
  const workers = overrides.workers;
  if (workers !== undefined && workers !== 'auto' && !(Number.isInteger(workers) && workers >= 1 && workers <= MAX_WORKERS)) {
    errors.push(`--workers: expected an integer 1..${MAX_WORKERS} or "auto", got ${describeValue(workers)}`);
  }
  if (errors.length > 0) throw new ConfigError(file, errors);

  const raw = data as RawConfig;
  if (workers !== undefined) raw.workers = workers;
  const config = normalise(raw, file);
  return { config };
}

export { ConfigError };
