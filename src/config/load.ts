// Loading a config file: YAML → schema (defaults) → semantic checks →
// normalised, frozen Config. Every problem found is collected and thrown
// together as one ConfigError, each pointing at its line:col in the file.

import { dirname, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { ConfigError, describeValue, formatPath } from './errors.js';
import type { Issue, PathSegment } from './errors.js';
import { normalise } from './normalise.js';
import { MAX_WORKERS, validateSchema } from './schema.js';
import type { RawConfig } from './schema.js';
import { checkSemantics } from './semantic.js';
import { parseYaml } from './yaml-source.js';
import type { Config } from './types.js';

export interface LoadResult {
  config: Config;
  /** At most one string: the keys present whose behaviour is not implemented yet. */
  warnings: string[];
}

export interface ConfigOverrides {
  /** `--workers N` from the command line; validated like `workers:`. */
  workers?: number | 'auto';
}

/**
 * Keys that are accepted and validated but not acted on yet. `path` is a key
 * path with `*` for any one key; `values` narrows it to those values.
 * Shrink this list as features land.
 */
export const NOT_IMPLEMENTED: readonly { path: string; values?: readonly string[]; note: string }[] = [];

export function loadConfig(file: string, overrides: ConfigOverrides = {}): LoadResult {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`${file}: cannot read: ${(err as Error).message}`]);
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

  // Defaults are filled into a copy: `present` keeps what the user wrote, for warnings.
  const present = source.data;
  const data = structuredClone(present);
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
  return { config, warnings: pendingWarnings(present, file) };
}

function pendingWarnings(present: unknown, file: string): string[] {
  const groups: string[] = [];
  for (const feature of NOT_IMPLEMENTED) {
    const keys = matchPath(present, feature.path.split('.'), [])
      .filter(({ value }) => !feature.values || feature.values.includes(value as string))
      .map(({ path, value }) => (feature.values ? `${formatPath(path)}: ${String(value)}` : formatPath(path)));
    if (keys.length > 0) groups.push(`${keys.join(', ')} (${feature.note})`);
  }
  return groups.length === 0 ? [] : [`${file}: accepted but not implemented yet: ${groups.join('; ')}`];
}

/** Every (path, value) in `node` matching `pattern`, where "*" matches any one key. */
function matchPath(node: unknown, pattern: string[], at: PathSegment[]): { path: PathSegment[]; value: unknown }[] {
  if (pattern.length === 0) return [{ path: at, value: node }];
  if (node === null || typeof node !== 'object' || Array.isArray(node)) return [];
  const [head, ...rest] = pattern as [string, ...string[]];
  const record = node as Record<string, unknown>;
  const keys = head === '*' ? Object.keys(record) : Object.hasOwn(record, head) ? [head] : [];
  return keys.flatMap((k) => matchPath(record[k], rest, [...at, k]));
}

export { ConfigError };
