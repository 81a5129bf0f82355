/*
 * The resemblance sketch's loop (src/repo/sketch.ts superFeatures), shared by bytes.c (sketch,
 * sketchAsync) and encode.c (the backup's encode on the thread pool): one definition, the same
 * features as the JavaScript.
 */
#ifndef LIFEBOAT_SKETCH_CORE_H
#define LIFEBOAT_SKETCH_CORE_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define FEATURES 12

static uint32_t sk_gear[256];
static uint32_t sk_a[FEATURES];
static uint32_t sk_b[FEATURES];
static pthread_once_t sk_once = PTHREAD_ONCE_INIT;

/* The fixed tables of sketch.ts (xorshift32 from fixed seeds). */
static void sk_init(void) {
  uint32_t x = 0x9e3779b9u;
  for (int i = 0; i < 256; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    sk_gear[i] = x;
  }
  x = 0x12345678u;
  for (int i = 0; i < FEATURES; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    sk_a[i] = x | 1u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    sk_b[i] = x;
  }
}

/* The sketch loop: the features into mx (zeroed by the caller); the number of positions sampled. */
static size_t sketch_into(const uint8_t *d, size_t n, uint32_t *mx) {
  pthread_once(&sk_once, sk_init);
  const uint32_t *gear = sk_gear;
  uint32_t h = 0;
  size_t sampled = 0;
#pragma GCC unroll 4
  for (size_t i = 0; i < n; i++) {
    h = (h << 1) + gear[d[i]];
    if ((h & 0x7f) == 0) {
      sampled++;
      for (int k = 0; k < FEATURES; k++) {
        uint32_t v = sk_a[k] * h + sk_b[k];
        if (v > mx[k]) mx[k] = v;
      }
    }
  }
  return sampled;
}

#endif
