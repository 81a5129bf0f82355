// SHA-256 of a stream, updated on the libuv thread pool (issue 18, branch dump6).
//
// A stream backup hashes every byte it reads (the snapshot's `stream` record) on the
// main thread, which also chunks, hashes each chunk (blob id) and sketches: on a
// daily dump the main thread is the bound and the hash was a fifth of it. Here each
// update runs as async work on a thread-pool thread, beside the main thread.
//
//   create() -> ctx                 a SHA-256 context (freed with the object)
//   update(ctx, buf, cb)            hash buf (a Uint8Array, or an array of up to 1024 of
//                                   them, in order) on the pool; cb(err) on the main thread.
//                                   At most one update per context at a time (the
//                                   caller queues them; a second one throws). buf is
//                                   referenced until cb and must not be changed meanwhile.
//   digest(ctx) -> Buffer(32)       the digest (throws while an update runs, or twice)
//   hmac(key, buf, cb)              HMAC-SHA-256 of buf under key on the pool (a chunk's
//                                   blob id, repo/crypto.ts blobId); cb(err, Buffer(32)).
//                                   key and buf are referenced until cb and must not be
//                                   changed (nor transferred to another thread) meanwhile.
//
// OpenSSL is node's own (the symbols node exports, headers in include/node/openssl):
// where they cannot be resolved this addon fails to load and the caller hashes in
// JavaScript (sources/stream.ts), the same digest.
#include <node_api.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  EVP_MD_CTX* md;
  int busy;
  int done;
} Ctx;

#define MAX_PARTS 1024

typedef struct {
  Ctx* ctx;
  size_t n;
  const unsigned char* data[MAX_PARTS];
  size_t len[MAX_PARTS];
  int ok;
  napi_ref buf_ref;
  napi_ref ctx_ref;
  napi_ref cb_ref;
  napi_async_work work;
} Job;

#define CHECK(env, call)                                   \
  do {                                                     \
    if ((call) != napi_ok) {                               \
      napi_throw_error((env), NULL, "hash: napi call failed"); \
      return NULL;                                         \
    }                                                      \
  } while (0)

static void ctx_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  Ctx* c = (Ctx*)data;
  if (c->md) EVP_MD_CTX_free(c->md);
  free(c);
}

static napi_value create(napi_env env, napi_callback_info info) {
  (void)info;
  Ctx* c = (Ctx*)calloc(1, sizeof(Ctx));
  if (!c) {
    napi_throw_error(env, NULL, "hash: out of memory");
    return NULL;
  }
  c->md = EVP_MD_CTX_new();
  if (!c->md || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
    if (c->md) EVP_MD_CTX_free(c->md);
    free(c);
    napi_throw_error(env, NULL, "hash: cannot initialise SHA-256");
    return NULL;
  }
  napi_value ext;
  if (napi_create_external(env, c, ctx_finalize, NULL, &ext) != napi_ok) {
    ctx_finalize(env, c, NULL);
    napi_throw_error(env, NULL, "hash: napi call failed");
    return NULL;
  }
  return ext;
}

static Ctx* get_ctx(napi_env env, napi_value v) {
  napi_valuetype t;
  void* p = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "hash: not a context");
    return NULL;
  }
  return (Ctx*)p;
}

static int get_bytes(napi_env env, napi_value v, const unsigned char** p, size_t* len);

static void execute(napi_env env, void* data) {
  (void)env;
  Job* j = (Job*)data;
  j->ok = 1;
  for (size_t i = 0; i < j->n && j->ok; i++) j->ok = EVP_DigestUpdate(j->ctx->md, j->data[i], j->len[i]) == 1;
}

static void complete(napi_env env, napi_status status, void* data) {
  Job* j = (Job*)data;
  j->ctx->busy = 0;
  napi_value cb = NULL, global, arg;
  napi_get_reference_value(env, j->cb_ref, &cb);
  napi_get_global(env, &global);
  if (status != napi_ok || !j->ok) {
    napi_value msg;
    napi_create_string_utf8(env, "hash: SHA-256 update failed", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &arg);
  } else {
    napi_get_null(env, &arg);
  }
  napi_delete_reference(env, j->buf_ref);
  napi_delete_reference(env, j->ctx_ref);
  napi_delete_reference(env, j->cb_ref);
  napi_delete_async_work(env, j->work);
  free(j);
  if (cb) napi_call_function(env, global, cb, 1, &arg, NULL);
}

static napi_value update(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "hash: update(ctx, buf, cb)");
    return NULL;
  }
  Ctx* c = get_ctx(env, argv[0]);
  if (!c) return NULL;
  if (c->busy || c->done) {
    napi_throw_error(env, NULL, c->done ? "hash: update after digest" : "hash: an update is already running");
    return NULL;
  }
  napi_valuetype ft;
  CHECK(env, napi_typeof(env, argv[2], &ft));
  if (ft != napi_function) {
    napi_throw_type_error(env, NULL, "hash: cb must be a function");
    return NULL;
  }
  Job* j = (Job*)calloc(1, sizeof(Job));
  if (!j) {
    napi_throw_error(env, NULL, "hash: out of memory");
    return NULL;
  }
  j->ctx = c;
  // one Uint8Array, or an array of them (hashed in order in one job); the array is
  // referenced, so its elements stay alive: the caller must not change it meanwhile
  bool is_arr = false;
  napi_is_array(env, argv[1], &is_arr);
  if (is_arr) {
    uint32_t n = 0;
    if (napi_get_array_length(env, argv[1], &n) != napi_ok || n > MAX_PARTS) {
      free(j);
      napi_throw_range_error(env, NULL, "hash: at most 1024 pieces per update");
      return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
      napi_value el;
      if (napi_get_element(env, argv[1], i, &el) != napi_ok || !get_bytes(env, el, &j->data[i], &j->len[i])) {
        free(j);
        napi_throw_type_error(env, NULL, "hash: buf must be a Uint8Array or an array of them");
        return NULL;
      }
    }
    j->n = n;
  } else {
    if (!get_bytes(env, argv[1], &j->data[0], &j->len[0])) {
      free(j);
      napi_throw_type_error(env, NULL, "hash: buf must be a Uint8Array or an array of them");
      return NULL;
    }
    j->n = 1;
  }
  napi_value name;
  if (napi_create_reference(env, argv[1], 1, &j->buf_ref) != napi_ok || napi_create_reference(env, argv[0], 1, &j->ctx_ref) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &j->cb_ref) != napi_ok || napi_create_string_utf8(env, "lifeboat:sha256", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, j, &j->work) != napi_ok) {
    if (j->buf_ref) napi_delete_reference(env, j->buf_ref);
    if (j->ctx_ref) napi_delete_reference(env, j->ctx_ref);
    if (j->cb_ref) napi_delete_reference(env, j->cb_ref);
    free(j);
    napi_throw_error(env, NULL, "hash: napi call failed");
    return NULL;
  }
  if (napi_queue_async_work(env, j->work) != napi_ok) {
    napi_delete_reference(env, j->buf_ref);
    napi_delete_reference(env, j->ctx_ref);
    napi_delete_reference(env, j->cb_ref);
    napi_delete_async_work(env, j->work);
    free(j);
    napi_throw_error(env, NULL, "hash: napi call failed");
    return NULL;
  }
  c->busy = 1;
  return NULL;
}

static napi_value digest(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "hash: digest(ctx)");
    return NULL;
  }
  Ctx* c = get_ctx(env, argv[0]);
  if (!c) return NULL;
  if (c->busy || c->done) {
    napi_throw_error(env, NULL, c->done ? "hash: digest taken twice" : "hash: an update is still running");
    return NULL;
  }
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  c->done = 1;
  if (EVP_DigestFinal_ex(c->md, out, &n) != 1 || n != 32) {
    napi_throw_error(env, NULL, "hash: SHA-256 final failed");
    return NULL;
  }
  napi_value buf;
  void* dst;
  CHECK(env, napi_create_buffer_copy(env, n, out, &dst, &buf));
  return buf;
}

typedef struct {
  const unsigned char* key;
  size_t key_len;
  const unsigned char* data;
  size_t len;
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len;
  int ok;
  napi_ref key_ref;
  napi_ref buf_ref;
  napi_ref cb_ref;
  napi_async_work work;
} MacJob;

static void mac_execute(napi_env env, void* data) {
  (void)env;
  MacJob* j = (MacJob*)data;
  j->ok = HMAC(EVP_sha256(), j->key, (int)j->key_len, j->data, j->len, j->out, &j->out_len) != NULL && j->out_len == 32;
}

static void mac_free(napi_env env, MacJob* j) {
  if (j->key_ref) napi_delete_reference(env, j->key_ref);
  if (j->buf_ref) napi_delete_reference(env, j->buf_ref);
  if (j->cb_ref) napi_delete_reference(env, j->cb_ref);
  if (j->work) napi_delete_async_work(env, j->work);
  free(j);
}

static void mac_complete(napi_env env, napi_status status, void* data) {
  MacJob* j = (MacJob*)data;
  napi_value cb = NULL, global, argv[2];
  napi_get_reference_value(env, j->cb_ref, &cb);
  napi_get_global(env, &global);
  napi_get_null(env, &argv[0]);
  napi_get_null(env, &argv[1]);
  if (status != napi_ok || !j->ok) {
    napi_value msg;
    napi_create_string_utf8(env, "hash: HMAC-SHA-256 failed", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &argv[0]);
  } else {
    void* dst;
    if (napi_create_buffer_copy(env, 32, j->out, &dst, &argv[1]) != napi_ok) {
      napi_value msg;
      napi_create_string_utf8(env, "hash: out of memory", NAPI_AUTO_LENGTH, &msg);
      napi_create_error(env, NULL, msg, &argv[0]);
    }
  }
  mac_free(env, j);
  if (cb) napi_call_function(env, global, cb, 2, argv, NULL);
}

static int get_bytes(napi_env env, napi_value v, const unsigned char** p, size_t* len) {
  bool is_ta = false;
  napi_typedarray_type tt;
  void* d;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) return 0;
  if (napi_get_typedarray_info(env, v, &tt, len, &d, NULL, NULL) != napi_ok || tt != napi_uint8_array) return 0;
  *p = (const unsigned char*)d;
  return 1;
}

static napi_value hmac(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "hash: hmac(key, buf, cb)");
    return NULL;
  }
  MacJob* j = (MacJob*)calloc(1, sizeof(MacJob));
  if (!j) {
    napi_throw_error(env, NULL, "hash: out of memory");
    return NULL;
  }
  napi_valuetype ft;
  if (!get_bytes(env, argv[0], &j->key, &j->key_len) || j->key_len > 1024 || !get_bytes(env, argv[1], &j->data, &j->len) ||
      napi_typeof(env, argv[2], &ft) != napi_ok || ft != napi_function) {
    free(j);
    napi_throw_type_error(env, NULL, "hash: hmac(key: Uint8Array, buf: Uint8Array, cb: function)");
    return NULL;
  }
  napi_value name;
  if (napi_create_reference(env, argv[0], 1, &j->key_ref) != napi_ok || napi_create_reference(env, argv[1], 1, &j->buf_ref) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &j->cb_ref) != napi_ok || napi_create_string_utf8(env, "lifeboat:hmac", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, mac_execute, mac_complete, j, &j->work) != napi_ok || napi_queue_async_work(env, j->work) != napi_ok) {
    mac_free(env, j);
    napi_throw_error(env, NULL, "hash: napi call failed");
    return NULL;
  }
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"create", NULL, create, NULL, NULL, NULL, napi_default, NULL},
      {"update", NULL, update, NULL, NULL, NULL, napi_default, NULL},
      {"digest", NULL, digest, NULL, NULL, NULL, napi_default, NULL},
      {"hmac", NULL, hmac, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, 4, props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
