/*
 * scrypt's ROMix (RFC 7914 section 5) with a smaller table (issue 18: the memory
 * floor of every command that opens a repository). Node's crypto.scrypt keeps all
 * N blocks of 128*r bytes: 32 MiB at the repository's N = 2^15, r = 8, which was
 * the peak RSS of `snapshots`, `check` and every other light command. This keeps
 * every k-th block only and recomputes a looked-up block from the kept one before
 * it ((j mod k) BlockMix steps, (k-1)/2 more per lookup on average): the same
 * function and the same result with 1/k of the memory. At k = 4 (8 MiB) it takes
 * node's time (~63 ms here: the work is 1.75x, but this loop is faster and touches
 * a quarter of the pages); k = 2 took 53 ms, k = 8 95 ms. src/repo/crypto.ts does the
 * two PBKDF2-HMAC-SHA256 steps around it (node's pbkdf2) and keeps node's scrypt
 * as the fallback (no addon, LIFEBOAT_NO_NATIVE=1); src/repo/kdf-native.test.ts
 * checks both give the same keys, and the RFC's test vectors.
 *
 *   romix(b: Uint8Array, N: number, r: number, k: number): Promise<Uint8Array>
 *     b = p blocks of 128*r bytes (PBKDF2's output); resolves with ROMix applied to
 *     each block (a copy: b is not changed). N a power of two >= 2, k a power of
 *     two 1..N, 1 <= r <= 64, N*r*128 <= 1 GiB, p*128*r = b's length <= 16 MiB
 *     (bad arguments throw). Runs as one libuv work item (a thread of the pool),
 *     as node's scrypt does; the table is its own mapping (mmap), unmapped at once.
 * Context-aware (NAPI_MODULE_INIT).
 */
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ROTL(a, b) (((a) << (b)) | ((a) >> (32 - (b))))

/* Salsa20/8 core: B = B + salsa20_8(B), 16 words. */
static void salsa8(uint32_t B[16]) {
  uint32_t x[16];
  memcpy(x, B, 64);
  for (int i = 0; i < 8; i += 2) {
    x[4] ^= ROTL(x[0] + x[12], 7);
    x[8] ^= ROTL(x[4] + x[0], 9);
    x[12] ^= ROTL(x[8] + x[4], 13);
    x[0] ^= ROTL(x[12] + x[8], 18);
    x[9] ^= ROTL(x[5] + x[1], 7);
    x[13] ^= ROTL(x[9] + x[5], 9);
    x[1] ^= ROTL(x[13] + x[9], 13);
    x[5] ^= ROTL(x[1] + x[13], 18);
    x[14] ^= ROTL(x[10] + x[6], 7);
    x[2] ^= ROTL(x[14] + x[10], 9);
    x[6] ^= ROTL(x[2] + x[14], 13);
    x[10] ^= ROTL(x[6] + x[2], 18);
    x[3] ^= ROTL(x[15] + x[11], 7);
    x[7] ^= ROTL(x[3] + x[15], 9);
    x[11] ^= ROTL(x[7] + x[3], 13);
    x[15] ^= ROTL(x[11] + x[7], 18);
    x[1] ^= ROTL(x[0] + x[3], 7);
    x[2] ^= ROTL(x[1] + x[0], 9);
    x[3] ^= ROTL(x[2] + x[1], 13);
    x[0] ^= ROTL(x[3] + x[2], 18);
    x[6] ^= ROTL(x[5] + x[4], 7);
    x[7] ^= ROTL(x[6] + x[5], 9);
    x[4] ^= ROTL(x[7] + x[6], 13);
    x[5] ^= ROTL(x[4] + x[7], 18);
    x[11] ^= ROTL(x[10] + x[9], 7);
    x[8] ^= ROTL(x[11] + x[10], 9);
    x[9] ^= ROTL(x[8] + x[11], 13);
    x[10] ^= ROTL(x[9] + x[8], 18);
    x[12] ^= ROTL(x[15] + x[14], 7);
    x[13] ^= ROTL(x[12] + x[15], 9);
    x[14] ^= ROTL(x[13] + x[12], 13);
    x[15] ^= ROTL(x[14] + x[13], 18);
  }
  for (int i = 0; i < 16; i++) B[i] += x[i];
}

/* BlockMix_salsa20/8 of in (2r blocks of 16 words) into out (in != out). */
static void blockmix(const uint32_t *in, uint32_t *out, size_t r) {
  uint32_t X[16];
  memcpy(X, &in[(2 * r - 1) * 16], 64);
  for (size_t i = 0; i < 2 * r; i++) {
    for (int w = 0; w < 16; w++) X[w] ^= in[i * 16 + w];
    salsa8(X);
    /* Y_i to out: even i to the first half, odd i to the second */
    memcpy(&out[((i & 1) * r + i / 2) * 16], X, 64);
  }
}

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static void st32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

/*
 * ROMix of one 128*r-byte block in place; V has N/k blocks, X, T, Y 32*r words
 * each (three distinct buffers, swapped, never copied).
 */
static void romix(uint8_t *b, size_t N, size_t r, size_t k, uint32_t *V, uint32_t *X, uint32_t *T, uint32_t *Y) {
  size_t w = 32 * r; /* words per block */
  for (size_t i = 0; i < w; i++) X[i] = le32(&b[4 * i]);
  for (size_t i = 0; i < N; i++) {
    if ((i & (k - 1)) == 0) memcpy(&V[(i / k) * w], X, w * 4);
    blockmix(X, Y, r);
    uint32_t *t = X;
    X = Y;
    Y = t;
  }
  for (size_t i = 0; i < N; i++) {
    size_t j = X[(2 * r - 1) * 16] & (N - 1);
    const uint32_t *v = &V[(j / k) * w];
    size_t steps = j & (k - 1);
    if (steps) {
      /* the block j from the kept block j - (j mod k): BlockMix steps between T and Y */
      blockmix(v, T, r);
      for (size_t s = 1; s < steps; s++) {
        blockmix(T, Y, r);
        uint32_t *t = T;
        T = Y;
        Y = t;
      }
      v = T;
    }
    for (size_t q = 0; q < w; q++) X[q] ^= v[q];
    blockmix(X, Y, r);
    uint32_t *t = X;
    X = Y;
    Y = t;
  }
  for (size_t i = 0; i < w; i++) st32(&b[4 * i], X[i]);
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  uint8_t *b;
  size_t len, N, r, k;
  int err; /* 0 ok, else errno-like: the table could not be mapped */
} job_t;

static void execute(napi_env env, void *data) {
  (void)env;
  job_t *j = data;
  size_t w = 32 * j->r;
  size_t vbytes = (j->N / j->k) * w * 4;
  uint32_t *V = mmap(NULL, vbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  uint32_t *scratch = malloc(3 * w * 4);
  if (V == MAP_FAILED || !scratch) {
    if (V != MAP_FAILED) munmap(V, vbytes);
    free(scratch);
    j->err = 1;
    return;
  }
  for (size_t off = 0; off < j->len; off += 128 * j->r) romix(j->b + off, j->N, j->r, j->k, V, scratch, scratch + w, scratch + 2 * w);
  munmap(V, vbytes);
  memset(scratch, 0, 3 * w * 4);
  free(scratch);
}

static void complete(napi_env env, napi_status status, void *data) {
  job_t *j = data;
  if (status == napi_ok && !j->err) {
    napi_value out;
    void *copy;
    if (napi_create_buffer_copy(env, j->len, j->b, &copy, &out) == napi_ok) napi_resolve_deferred(env, j->deferred, out);
    else {
      napi_value msg, e;
      napi_create_string_utf8(env, "romix: no result buffer", NAPI_AUTO_LENGTH, &msg);
      napi_create_error(env, NULL, msg, &e);
      napi_reject_deferred(env, j->deferred, e);
    }
  } else {
    napi_value msg, e;
    napi_create_string_utf8(env, j->err ? "romix: out of memory for the scrypt table" : "romix: the work item did not run", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &e);
    napi_reject_deferred(env, j->deferred, e);
  }
  napi_delete_async_work(env, j->work);
  memset(j->b, 0, j->len);
  free(j->b);
  free(j);
}

static napi_value bad(napi_env env, const char *why) {
  napi_throw_type_error(env, NULL, why);
  return NULL;
}

static int pow2(double v, double max) { return v >= 1 && v <= max && v == (double)(uint64_t)v && (((uint64_t)v & ((uint64_t)v - 1)) == 0); }

static napi_value js_romix(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  const char *usage = "romix(b: Uint8Array, N: power of two 2..2^24, r: 1..64, k: power of two 1..N; N*r*128 <= 1 GiB, b = p*128*r bytes, at most 16 MiB)";
  if (argc != 4) return bad(env, usage);
  bool is;
  napi_typedarray_type t;
  size_t len;
  void *d;
  if (napi_is_typedarray(env, argv[0], &is) != napi_ok || !is) return bad(env, usage);
  if (napi_get_typedarray_info(env, argv[0], &t, &len, &d, NULL, NULL) != napi_ok || t != napi_uint8_array) return bad(env, usage);
  double N, r, k;
  if (napi_get_value_double(env, argv[1], &N) != napi_ok || napi_get_value_double(env, argv[2], &r) != napi_ok || napi_get_value_double(env, argv[3], &k) != napi_ok) return bad(env, usage);
  if (!pow2(N, 1 << 24) || N < 2 || !(r >= 1 && r <= 64 && r == (double)(uint64_t)r) || !pow2(k, N)) return bad(env, usage);
  if (N * r * 128 > (double)(1 << 30)) return bad(env, usage);
  size_t bs = 128 * (size_t)r;
  if (len == 0 || len % bs != 0 || len > (16u << 20)) return bad(env, usage);
  job_t *j = calloc(1, sizeof *j);
  uint8_t *b = malloc(len);
  if (!j || !b) {
    free(j);
    free(b);
    return bad(env, "romix: out of memory");
  }
  memcpy(b, d, len);
  j->b = b;
  j->len = len;
  j->N = (size_t)N;
  j->r = (size_t)r;
  j->k = (size_t)k;
  napi_value promise, rname;
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
    free(b);
    free(j);
    return bad(env, "romix: no promise");
  }
  napi_create_string_utf8(env, "lifeboat:romix", NAPI_AUTO_LENGTH, &rname);
  napi_create_async_work(env, NULL, rname, execute, complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return promise;
}

NAPI_MODULE_INIT() {
  napi_value f;
  napi_create_function(env, "romix", NAPI_AUTO_LENGTH, js_romix, NULL, &f);
  napi_set_named_property(env, exports, "romix", f);
  return exports;
}
