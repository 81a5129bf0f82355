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
 *   sketchAsync(data: Uint8Array, cb: (err, features: number[] | null) => void): void
 *     the same on the libuv thread pool; data must be left alone until cb.
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
#include <stdlib.h>

#include "napi-typed.h"
#include "sketch-core.h"

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

/* sketchAsync(data, cb): the sketch on the libuv thread pool (branch dump6: off the backup's
 * main thread); cb(err, features: number[] | null), null when no position was sampled.
 * data is referenced until cb and must not be changed (nor transferred) meanwhile. */
typedef struct {
  const uint8_t *d;
  size_t n;
  size_t sampled;
  uint32_t mx[FEATURES];
  napi_ref data_ref;
  napi_ref cb_ref;
  napi_async_work work;
} SketchJob;

static void sk_execute(napi_env env, void *data) {
  (void)env;
  SketchJob *j = data;
  j->sampled = sketch_into(j->d, j->n, j->mx);
}

static void sk_free(napi_env env, SketchJob *j) {
  if (j->data_ref) napi_delete_reference(env, j->data_ref);
  if (j->cb_ref) napi_delete_reference(env, j->cb_ref);
  if (j->work) napi_delete_async_work(env, j->work);
  free(j);
}

static void sk_complete(napi_env env, napi_status status, void *data) {
  SketchJob *j = data;
  napi_value cb = NULL, global, argv[2];
  napi_get_reference_value(env, j->cb_ref, &cb);
  napi_get_global(env, &global);
  napi_get_null(env, &argv[0]);
  napi_get_null(env, &argv[1]);
  if (status != napi_ok) {
    napi_value msg;
    napi_create_string_utf8(env, "sketchAsync: the job did not run", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &argv[0]);
  } else if (j->sampled > 0 && napi_create_array_with_length(env, FEATURES, &argv[1]) == napi_ok) {
    for (int k = 0; k < FEATURES; k++) {
      napi_value v;
      napi_create_uint32(env, j->mx[k], &v);
      napi_set_element(env, argv[1], k, v);
    }
  }
  sk_free(env, j);
  if (cb) napi_call_function(env, global, cb, 2, argv, NULL);
}

static napi_value js_sketch_async(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *dp;
  size_t n;
  napi_valuetype ft;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 || !typed(env, argv[0], napi_uint8_array, &dp, &n) ||
      napi_typeof(env, argv[1], &ft) != napi_ok || ft != napi_function) {
    napi_throw_type_error(env, NULL, "sketchAsync(data: Uint8Array, cb: function)");
    return NULL;
  }
  SketchJob *j = calloc(1, sizeof(SketchJob));
  if (!j) {
    napi_throw_error(env, NULL, "sketchAsync: out of memory");
    return NULL;
  }
  j->d = dp;
  j->n = n;
  napi_value name;
  if (napi_create_reference(env, argv[0], 1, &j->data_ref) != napi_ok || napi_create_reference(env, argv[1], 1, &j->cb_ref) != napi_ok ||
      napi_create_string_utf8(env, "lifeboat:sketch", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, sk_execute, sk_complete, j, &j->work) != napi_ok || napi_queue_async_work(env, j->work) != napi_ok) {
    sk_free(env, j);
    napi_throw_error(env, NULL, "sketchAsync: napi call failed");
    return NULL;
  }
  return NULL;
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
  uint32_t mx[FEATURES] = {0};
  size_t sampled = sketch_into(dp, n, mx);
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
  napi_create_function(env, "sketchAsync", NAPI_AUTO_LENGTH, js_sketch_async, NULL, &f);
  napi_set_named_property(env, exports, "sketchAsync", f);
  return exports;
}
