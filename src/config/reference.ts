// The configuration reference (`switchyard help config`, docs/config.md),
// generated from the JSON schema itself: every key with the type it takes
// (the schema's `expected` phrase), its default, and one line from
// descriptions.ts. A key the schema gains without a description shows up in
// `missingDescriptions()` (a test fails on it), so the reference cannot
// drift from what the loader accepts.
import { configSchema } from './schema.js';
import { KEY_DESCRIPTIONS } from './descriptions.js';

type Schema = Record<string, unknown>;

export interface KeyDoc {
  /** `upstreams.<name>.servers[].address` */
  path: string;
  expected: string;
  default?: unknown;
  required: boolean;
  description?: string;
}

const isObject = (v: unknown): v is Schema => v !== null && typeof v === 'object' && !Array.isArray(v);
const types = (s: Schema): string[] => (Array.isArray(s.type) ? (s.type as string[]) : [String(s.type)]);

function walk(schema: Schema, path: string, required: boolean, out: KeyDoc[]): void {
  if (path !== '') {
    out.push({
      path,
      expected: typeof schema.expected === 'string' ? schema.expected : 'a value',
      ...('default' in schema ? { default: schema.default } : {}),
      required,
      description: KEY_DESCRIPTIONS[path],
    });
  }
  if (isObject(schema.properties)) {
    const req = new Set((schema.required as string[] | undefined) ?? []);
    for (const [key, sub] of Object.entries(schema.properties)) walk(sub as Schema, path === '' ? key : `${path}.${key}`, req.has(key), out);
  } else if (isObject(schema.additionalProperties) && isObject(schema.additionalProperties.properties)) {
    walkChildren(schema.additionalProperties, `${path}.<name>`, out);
  }
  if (types(schema).includes('array') && isObject(schema.items) && isObject(schema.items.properties)) walkChildren(schema.items, `${path}[]`, out);
}

/** The keys of a mapping reached through a list item or a named entry (which itself gets no line). */
function walkChildren(schema: Schema, path: string, out: KeyDoc[]): void {
  const req = new Set((schema.required as string[] | undefined) ?? []);
  for (const [key, sub] of Object.entries(schema.properties as Schema)) walk(sub as Schema, `${path}.${key}`, req.has(key), out);
}

export function configKeys(): KeyDoc[] {
  const out: KeyDoc[] = [];
  walk(configSchema, '', true, out);
  return out;
}

/** Keys of the schema without a description, and descriptions of keys the schema no longer has. */
export function missingDescriptions(): { undescribed: string[]; stale: string[] } {
  const keys = configKeys().map((k) => k.path);
  const known = new Set(keys);
  return {
    undescribed: keys.filter((k) => KEY_DESCRIPTIONS[k] === undefined),
    stale: Object.keys(KEY_DESCRIPTIONS).filter((k) => !known.has(k)),
  };
}

function formatDefault(value: unknown): string {
  if (value === undefined) return '';
  if (isObject(value) && Object.keys(value).length === 0) return '';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** A Markdown cell: pipes escaped, so a type like `a | b` stays in its column. */
const cell = (s: string): string => s.replace(/\|/g, '\\|');

/** docs/config.md and `switchyard help config`. */
export function configReference(): string {
  const rows = configKeys().map((k) => {
    const def = formatDefault(k.default);
    return `| \`${k.path}\` | ${cell(k.expected)} | ${k.required ? 'required' : def === '' ? '' : `\`${cell(def)}\``} | ${cell(k.description ?? '')} |`;
  });
  return `# Configuration reference

Generated from the schema (\`src/config/schema.ts\`, descriptions in
\`src/config/descriptions.ts\`) by \`switchyard help config\`; a test fails when
this file and the schema disagree. Regenerate with
\`node dist/cli.js help config > docs/config.md\`.

YAML; unknown keys are errors (with the nearest known key suggested).
Durations: \`500ms\`, \`2s\`, \`1m\`, \`1h\` or integer milliseconds. Sizes:
integer bytes or \`16kb\`, \`10mb\`. \`<name>\` stands for a name you choose;
\`[]\` for each item of a list.

| key | type | default | what it does |
| --- | --- | --- | --- |
${rows.join('\n')}
`;
}
