// The YAML side of loading: parse keeping node ranges, report syntax errors
// and duplicate keys with their positions, and map a key path back to the
// line:col of the node it names so every later check can point into the file.

import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import type { Document, Node, Pair } from 'yaml';
import type { PathSegment } from './errors.js';

export interface Position {
  line: number;
  col: number;
}

/** An issue whose position is already known. */
export interface PlacedIssue {
  pos: Position;
  path: readonly PathSegment[];
  message: string;
}

export interface YamlSource {
  /** Plain JS value of the document (last duplicate key wins; duplicates are reported anyway). */
  data: unknown;
  /** Syntax errors: when non-empty, `data` must not be checked further. */
  syntaxErrors: { pos: Position; message: string }[];
  duplicateKeys: PlacedIssue[];
  /** Position of the node `path` names, or of its deepest ancestor present in the file. */
  locate(path: readonly PathSegment[], at?: 'key' | 'value'): Position;
}

export function parseYaml(text: string): YamlSource {
  const lineCounter = new LineCounter();
  // Duplicate keys are found by our own walk below, which knows their key path.
  const doc = parseDocument(text, { lineCounter, uniqueKeys: false, prettyErrors: false });
  const pos = (offset: number): Position => lineCounter.linePos(offset);

  const syntaxErrors = doc.errors.map((e) => ({
    pos: pos(e.pos[0]),
    message: e.code === 'MULTIPLE_DOCS' ? 'expected one YAML document, found several' : firstLine(e.message),
  }));
  const locate = (path: readonly PathSegment[], at: 'key' | 'value' = 'value'): Position => {
    const node = findNode(doc, path, at);
    return pos(node?.range?.[0] ?? 0);
  };
  if (syntaxErrors.length > 0) return { data: undefined, syntaxErrors, duplicateKeys: [], locate };
  return { data: doc.toJS({ maxAliasCount: 1000 }), syntaxErrors, duplicateKeys: findDuplicateKeys(doc.contents, [], pos), locate };
}

/** The message alone: the position is printed separately. */
function firstLine(message: string): string {
  return message.split('\n')[0]!;
}

function keyText(pair: Pair): string {
  return isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
}

/** Walks down `path`; stops at the deepest node that exists. */
function findNode(doc: Document, path: readonly PathSegment[], at: 'key' | 'value'): Node | null {
  let node = resolve(doc, doc.contents);
  let found: Node | null = node;
  for (let i = 0; i < path.length && node; i++) {
    const seg = path[i]!;
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.findLast((p) => keyText(p) === String(seg));
      if (!pair) break;
      const keyNode = isScalar(pair.key) ? pair.key : null;
      const value = resolve(doc, pair.value as Node | null);
      // An empty value (`port:`) has no useful range of its own: point at its key.
      found = (last && at === 'key') || !value ? keyNode ?? found : value;
      node = value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = resolve(doc, node.items[seg] as Node | null);
      if (!item) break;
      found = node = item;
    } else {
      break;
    }
  }
  return found;
}

function resolve(doc: Document, node: Node | null | undefined): Node | null {
  if (!node) return null;
  if (isAlias(node)) return (node.resolve(doc) as Node | undefined) ?? null;
  return node;
}

function findDuplicateKeys(node: unknown, path: PathSegment[], pos: (offset: number) => Position): PlacedIssue[] {
  const issues: PlacedIssue[] = [];
  if (isMap(node)) {
    const seen = new Map<string, Position>();
    for (const pair of node.items) {
      const key = keyText(pair);
      const here = pos((pair.key as Node | null)?.range?.[0] ?? 0);
      const first = seen.get(key);
      if (first) issues.push({ pos: here, path: [...path, key], message: `duplicate key (first defined at line ${first.line})` });
      else seen.set(key, here);
      issues.push(...findDuplicateKeys(pair.value, [...path, key], pos));
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => issues.push(...findDuplicateKeys(item, [...path, i], pos)));
  }
  return issues;
}
