/*
 * The two per-byte loops of a backup in C (issue 18): the chunker's cut search
 * (src/repo/chunker.ts, Chunker.findCut) and the resemblance sketch
 * (src/repo/sketch.ts, superFeatures). Both give exactly the results of the
 * JavaScript, which stays as the fallback (the cut points and sketches are part
 * of how existing repositories deduplicate and find delta bases);
 * src/repo/bytes-native.test.ts compares the two.
 *
 *   findCut(buf: Uint8Array, gear: Int32Array(256), st: Int32Array(9)): number
 *     st = [start, len, scanned, h, min, avg, max, maskS, maskL]: the chunk being
 *     cut is buf[start, start + len); returns the cut (chunk length) or 0, and
 *     writes the rolling state back to st[2] (scanned) and st[3] (h).
 *   sketch(data: Uint8Array, out: Uint32Array(12)): boolean
 *     the 12 features into out; false (out untouched) when no position was sampled.
 *
 * Every length and offset is checked against the views: bad arguments throw, and
 * nothing is read outside the given bytes. Typed-array views are read in place
 * (their byteOffset is honoured, nothing is copied). Context-aware
 * (NAPI_MODULE_INIT): it loads in worker threads.
 */
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stddef.h>

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

/* A typed array of the given type: its elements (after byteOffset) and count, or 0 on a mismatch. */
static int typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *count) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, v, &type, count, data, NULL, NULL) != napi_ok || type != want) return 0;
  if (*count > 0 && *data == NULL) return 0;
  return 1;
}

static napi_value js_find_cut(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  void *bp, *gp, *sp;
  size_t blen, glen, slen;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3 || !typed(env, argv[0], napi_uint8_array, &bp, &blen) ||
      !typed(env, argv[1], napi_int32_array, &gp, &glen) || glen != 256 || !typed(env, argv[2], napi_int32_array, &sp, &slen) || slen != 9) {
    napi_throw_type_error(env, NULL, "findCut(buf: Uint8Array, gear: Int32Array(256), state: Int32Array(9))");
    return NULL;
  }
  const uint8_t *b = bp;
  const uint32_t *gear = gp;
  int32_t *st = sp;
  int64_t start = st[0], len = st[1], scanned = st[2], min = st[4], avg = st[5], max = st[6];
  uint32_t h = (uint32_t)st[3];
  const uint32_t maskS = (uint32_t)st[7], maskL = (uint32_t)st[8];
  /* Only what keeps the reads inside buf[start, start + len) is required; the rest is the JS's arithmetic. */
  if (start < 0 || len < 0 || (uint64_t)(start + len) > (uint64_t)blen || scanned < 0) {
    napi_throw_range_error(env, NULL, "findCut: state out of range");
    return NULL;
  }
  int64_t cut = 0;
  napi_value r;
  if (len >= min) {
    const uint8_t *p = b + start; /* p[0, len) is inside buf */
    int64_t i = scanned < min ? min : scanned;
    const int64_t normEnd = len < avg ? len : avg;
#pragma GCC unroll 4
    for (; i < normEnd; i++) {
      h = (h << 1) + gear[p[i]];
      if ((h & maskS) == 0) {
        cut = i + 1;
        goto done;
      }
    }
    const int64_t end = len < max ? len : max;
#pragma GCC unroll 4
    for (; i < end; i++) {
      h = (h << 1) + gear[p[i]];
      if ((h & maskL) == 0) {
        cut = i + 1;
        goto done;
      }
    }
    if (len >= max) {
      cut = max;
      goto done;
    }
    st[2] = (int32_t)i;
    st[3] = (int32_t)h;
  }
  napi_create_int32(env, 0, &r);
  return r;
done:
  st[2] = 0;
  st[3] = 0;
  napi_create_int64(env, cut, &r);
  return r;
}

static napi_value js_sketch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *dp, *op;
  size_t n, olen;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 || !typed(env, argv[0], napi_uint8_array, &dp, &n) ||
      !typed(env, argv[1], napi_uint32_array, &op, &olen) || olen != FEATURES) {
    napi_throw_type_error(env, NULL, "sketch(data: Uint8Array, out: Uint32Array(12))");
    return NULL;
  }
  pthread_once(&sk_once, sk_init);
  const uint8_t *d = dp;
  const uint32_t *gear = sk_gear;
  uint32_t mx[FEATURES] = {0};
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
  napi_value r;
  if (sampled > 0) {
    uint32_t *out = op;
    for (int k = 0; k < FEATURES; k++) out[k] = mx[k];
  }
  napi_get_boolean(env, sampled > 0, &r);
  return r;
}

NAPI_MODULE_INIT() {
  napi_value f;
  napi_create_function(env, "findCut", NAPI_AUTO_LENGTH, js_find_cut, NULL, &f);
  napi_set_named_property(env, exports, "findCut", f);
  napi_create_function(env, "sketch", NAPI_AUTO_LENGTH, js_sketch, NULL, &f);
  napi_set_named_property(env, exports, "sketch", f);
  return exports;
}
