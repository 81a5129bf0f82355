import { createRequire } from 'node:module';

const addons = new Map<string, unknown>();

/**
 * One of the C addons built by `npm install` (native/build/Release/<name>.node),
 * loaded once per thread, or undefined when it did not build. The callers
 * (repo/native.ts, engine/fsmeta.ts, engine/scan-native.ts, engine/file-writer.ts)
 * decide when to use it (their own switches; nativeAddon below for
 * LIFEBOAT_NO_NATIVE) and keep the JavaScript path as the fallback.
 */
export function requireAddon<T>(name: string): T | undefined {
  if (!addons.has(name)) {
    let m: unknown = null;
    try {
      m = createRequire(import.meta.url)(new URL(`../../../native/build/Release/${name}.node`, import.meta.url).pathname);
    } catch {
      m = null;
    }
    addons.set(name, m);
  }
  return (addons.get(name) ?? undefined) as T | undefined;
}

/**
 * requireAddon, unless LIFEBOAT_NO_NATIVE=1 (read on each call: tests compare the
 * C and JavaScript paths in one process): the switch every addon but the time
 * helper answers to.
 */
export function nativeAddon<T>(name: string): T | undefined {
  return process.env.LIFEBOAT_NO_NATIVE === '1' ? undefined : requireAddon<T>(name);
}
