import { closest, distance } from 'fastest-levenshtein';

/**
 * "did you mean ...?" for unknown configuration keys: the known keys of the
 * strict zod object at the path, and the closest of them by
 * Levenshtein distance.
 */

/* eslint-disable @typescript-eslint/no-explicit-any */
interface ZodLike {
  _zod: { def: any };
}

const isZod = (s: unknown): s is ZodLike => !!s && typeof s === 'object' && '_zod' in s && !!(s as ZodLike)._zod?.def;

/** Strip wrappers (optional, default, pipe, lazy, ...) down to the schema that validates the value. */
function unwrap(s: unknown, budget = 32): unknown {
  while (isZod(s) && budget-- > 0) {
    const def = s._zod.def;
    switch (def.type) {
      case 'optional':
      case 'nullable':
      case 'default':
      case 'prefault':
      case 'catch':
      case 'readonly':
      case 'nonoptional':
      case 'success':
        s = def.innerType;
        continue;
      case 'pipe':
        s = def.in;
        continue;
      case 'lazy':
        s = def.getter();
        continue;
      default:
        return s;
    }
  }
  return s;
}

/** The object schemas a value at this schema can be checked against (a union's options, filtered by the discriminator). */
function objectsOf(s: unknown, value: unknown, depth = 0): ZodLike[] {
  s = unwrap(s);
  if (!isZod(s) || depth > 8) return [];
  const def = s._zod.def;
  if (def.type === 'object') return [s];
  if (def.type === 'union') {
    const options: unknown[] = def.options ?? [];
    const disc: string | undefined = def.discriminator;
    const all = options.flatMap((o) => objectsOf(o, value, depth + 1));
    if (disc && value && typeof value === 'object' && disc in value) {
      const want = (value as Record<string, unknown>)[disc];
      const match = all.filter((o) => {
        const d = unwrap(o._zod.def.shape?.[disc]);
        const values: unknown[] = isZod(d) ? (d._zod.def.values ?? []) : [];
        return values.includes(want);
      });
      if (match.length) return match;
    }
    return all;
  }
  if (def.type === 'intersection') return [...objectsOf(def.left, value, depth + 1), ...objectsOf(def.right, value, depth + 1)];
  return [];
}

/** Known keys of the object that `path` (as in a zod issue) points to inside `root`; [] when it cannot be told. */
export function knownKeysAt(root: unknown, path: readonly PropertyKey[], value: unknown): string[] {
  let schemas: unknown[] = [root];
  let v: unknown = value;
  for (const k of path) {
    const next: unknown[] = [];
    for (const s0 of schemas) {
      const s = unwrap(s0);
      if (!isZod(s)) continue;
      const def = s._zod.def;
      if (def.type === 'record') next.push(def.valueType);
      else if (def.type === 'array') next.push(def.element);
      else if (def.type === 'tuple') next.push(def.items?.[Number(k)] ?? def.rest);
      else for (const o of objectsOf(s, v)) if (o._zod.def.shape?.[String(k)]) next.push(o._zod.def.shape[String(k)]);
    }
    schemas = next;
    v = v && typeof v === 'object' ? (v as Record<string, unknown>)[String(k)] : undefined;
  }
  const keys = new Set<string>();
  for (const s of schemas) for (const o of objectsOf(s, v)) for (const key of Object.keys(o._zod.def.shape ?? {})) keys.add(key);
  return [...keys];
}

/** ` (did you mean "location"?)` when a known key is close enough to the unknown one, else "". */
export function didYouMean(unknownKey: string, known: readonly string[]): string {
  if (!known.length || !unknownKey) return '';
  const best = closest(unknownKey, [...known]);
  const d = distance(unknownKey.toLowerCase(), best.toLowerCase());
  const limit = Math.max(2, Math.floor(Math.max(unknownKey.length, best.length) / 3));
  return d <= limit ? ` (did you mean "${best}"?)` : '';
}
