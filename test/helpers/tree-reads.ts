import type { Repository } from '../../src/repo/repository.js';

/**
 * Wrap `repo.loadTree` so that each read takes a few milliseconds more and is
 * counted: `most` is the largest number of reads under way at once (reset it
 * between runs), `loads` the number of reads.
 */
export function countTreeReads(repo: Repository, delayMs = 2): { most: number; loads: number } {
  const orig = repo.loadTree.bind(repo);
  const c = { most: 0, loads: 0 };
  let inflight = 0;
  repo.loadTree = async (id, o) => {
    inflight++;
    c.loads++;
    c.most = Math.max(c.most, inflight);
    try {
      await new Promise((r) => setTimeout(r, delayMs));
      return await orig(id, o);
    } finally {
      inflight--;
    }
  };
  return c;
}
