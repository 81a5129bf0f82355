/* Shared by the addons that take typed arrays (bytes.c, index-scan.c). */
#ifndef LIFEBOAT_NAPI_TYPED_H
#define LIFEBOAT_NAPI_TYPED_H
#include <node_api.h>
#include <stddef.h>

/* A typed array of the given type: its elements (after byteOffset) and count, or 0 on a mismatch. */
static inline int typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *count) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, v, &type, count, data, NULL, NULL) != napi_ok || type != want) return 0;
  if (*count > 0 && *data == NULL) return 0;
  return 1;
}
#endif
