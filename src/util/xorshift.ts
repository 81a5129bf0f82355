/**
 * A seeded xorshift32 generator of numbers in [0, 1): cheap and reproducible,
 * for test and benchmark data (not for anything secret).
 */
export function xorshift32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}
