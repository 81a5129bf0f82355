/*
 * glibc malloc's mmap threshold, set at run time (mallopt(3)).
 *
 *   mmapThreshold(bytes: number): boolean   M_MMAP_THRESHOLD; false where it cannot be set
 *                                           (not glibc, or out of glibc's range: at most 32 MiB)
 *   mmapped(): number                       bytes malloc holds in mmap'd chunks now (mallinfo2 hblkhd;
 *                                           -1 where unknown): for the tests
 *   trim(): boolean                         malloc_trim(0): the free memory of malloc's heaps given back to
 *                                           the kernel (true when some was); false where not glibc
 *
 * Allocations of at least the threshold get a mapping of their own, returned to the kernel when
 * freed, instead of a place in the heap, which only shrinks from its top. Setting it also stops
 * glibc from raising the threshold by itself each time a large mapped block is freed (its default,
 * which lets later buffers of that size fill the heap). Used by the commands that move one
 * stream of data (src/util/malloc.ts). The daemon trims once no job runs (releaseIdleMemory).
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <stdbool.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static napi_value js_mmap_threshold(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  double bytes = -1;
  bool ok = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == 1 && napi_get_value_double(env, argv[0], &bytes) == napi_ok) {
#ifdef __GLIBC__
    if (bytes >= 0 && bytes <= 32.0 * 1024 * 1024) ok = mallopt(M_MMAP_THRESHOLD, (int)bytes) == 1;
#endif
  }
  napi_value r;
  napi_get_boolean(env, ok, &r);
  return r;
}

static napi_value js_mmapped(napi_env env, napi_callback_info info) {
  double n = -1;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  struct mallinfo2 mi = mallinfo2();
  n = (double)mi.hblkhd;
#endif
  napi_value r;
  napi_create_double(env, n, &r);
  return r;
}

static napi_value js_trim(napi_env env, napi_callback_info info) {
  (void)info;
  bool released = false;
#ifdef __GLIBC__
  released = malloc_trim(0) == 1;
#endif
  napi_value r;
  napi_get_boolean(env, released, &r);
  return r;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value f;
  napi_create_function(env, "mmapThreshold", NAPI_AUTO_LENGTH, js_mmap_threshold, NULL, &f);
  napi_set_named_property(env, exports, "mmapThreshold", f);
  napi_create_function(env, "mmapped", NAPI_AUTO_LENGTH, js_mmapped, NULL, &f);
  napi_set_named_property(env, exports, "mmapped", f);
  napi_create_function(env, "trim", NAPI_AUTO_LENGTH, js_trim, NULL, &f);
  napi_set_named_property(env, exports, "trim", f);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
