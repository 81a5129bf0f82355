/*
 * The backup's blob encode in C, on libuv's thread pool (branch nencode): compression chosen by
 * exactly the rules of codec.ts BlobCodec.encode (the C delta of zdelta.c first, zstd level
 * DELTA_FAST_LEVEL's parameters with the base as dictionary for bases up to DELTA_FAST_DICT at
 * levels up to DELTA_FAST_LEVEL, else the tuned window/hash parameters with the base loaded as a
 * dictionary; plain zstd at the repository's level unless the delta saved half or the three
 * incompressibility probes say no; the smallest kept, never more than raw), then sealed as crypto.ts
 * seal does (AES-256-GCM, nonce 12 || ciphertext || tag 16, no aad; the nonce from OpenSSL's CSPRNG,
 * RAND_bytes of the node binary), and, when asked, the blob's keyed id (HMAC-SHA256 with the id key,
 * crypto.ts blobId). The compressed payload is the same bytes the JavaScript produces: the same zstd
 * sources (those zstd-napi ships), the same parameters and the same calls (ZSTD_compress2,
 * ZSTD_compressUsingDict). No second V8 isolate: a backup whose blobs all encode here starts no
 * encode worker thread (src/repo/native-encode-pool.ts).
 *
 * Included by zdelta.c (one unit, one addon): the encoder needs zstd's compressor and the C delta,
 * which that addon already links; an addon of its own would compile a third copy of zstd.
 *
 *   encOpen(encKey: Uint8Array(32), idKey: Uint8Array(32), level: 1..19) -> ctx (an external)
 *   encRun(ctx, data: Array<Uint8Array>, dicts: Array<Uint8Array | undefined>, flags: Uint8Array,
 *          cb: (results: Array<[sealed: Buffer, compression: 0|1|2, id: string | undefined, sf: number[] | undefined] | string>) => void)
 *     flags[i]: 1 hash the plaintext (its id, hex), 2 no C delta (LIFEBOAT_NO_ZDELTA=1: zstd's match
 *     finder only), 4 the resemblance sketch (from SKETCH_MIN bytes, compressed blobs only)
 *     results[i]: a string is that item's error (no memory, a cipher failure).
 *
 * Every argument is checked (types, lengths, counts); the buffers are referenced (napi_ref) until the
 * callback and never written; the work item touches no JS value.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <sys/mman.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <pthread.h>
#include "sketch-core.h"

#define EN_NONCE 12
#define EN_TAG 16
#define EN_MAX_DATA ((size_t)256 << 20) /* MAX_TREE_BLOB: the format's largest blob */
#define EN_MAX_DICT ((size_t)512 << 20) /* two bases */
#define EN_MAX_ITEMS 65536
#define EN_FAST_DICT ((size_t)2 << 20) /* codec.ts DELTA_FAST_DICT */
#define EN_FAST_LEVEL 4                /* codec.ts DELTA_FAST_LEVEL */
#define EN_PROBE_MIN ((size_t)64 << 10) /* codec.ts PROBE_MIN */
#define EN_PROBE 4096                   /* codec.ts PROBE */
#define EN_KEEP ((size_t)4 << 20)       /* scratch a pool thread keeps between jobs at most */
#define EN_MAX_FILE ((size_t)16 << 20)  /* a small file read here (small-files.ts SMALL_FILE_MAX is 512 KiB) */
#define EN_MAX_PATH 65536
#define F_ID 1
#define F_NO_ZDELTA 2
#define F_SKETCH 4
#define EN_SKETCH_MIN ((size_t)64 << 10) /* codec.ts SKETCH_MIN */

typedef struct {
  uint8_t enc[32];
  uint8_t id[32];
  int level;
} enc_ctx;

typedef struct {
  const uint8_t *data;
  size_t n;
  const uint8_t *dict;
  size_t m;
  int hasDict;
  int flags;
  /* a small file (encFiles): read from path first (at most size bytes, else it grew) */
  char *path;
  size_t size;
  int kind; /* 0 read (or not a file item), 1 failed (err_no, syscall), 2 grew */
  int err_no;
  const char *syscall;
  int xattr; /* flistxattr found attributes (or could not tell): the caller reads them */
  /* results */
  int sampled;
  uint32_t mx[FEATURES];
  uint8_t *sealed;
  size_t sealedLen;
  int comp;
  uint8_t id[32];
  const char *err;
} enc_item;

typedef struct {
  napi_async_work work;
  napi_ref cb;
  napi_ref refs[4];
  enc_item *items;
  uint32_t n;
  enc_ctx key;
} enc_job;

/*
 * An encoder's state (contexts and scratch), kept for the process's life (scratch trimmed after
 * each job). Not one per pool thread: libuv runs a job on any of its threads (4), so per-thread
 * state grew to four copies (~7 MB each with a 1 MiB delta's tables); a job takes one from a free
 * list and gives it back, so there are only as many as jobs ever ran at once (the JS side runs at
 * most `size` at a time).
 */
typedef struct en_state {
  zd_state zd;
  ZSTD_CCtx *cc;    /* plain, deltaFast and the tuned delta */
  ZSTD_CCtx *probe; /* level 1, the incompressibility probes */
  EVP_CIPHER_CTX *enc;
  uint8_t *buf[3]; /* 0, 1: compressed candidates; 2: a small file's bytes */
  size_t bufCap[3];
  struct en_state *next;
} en_state;
static pthread_mutex_t en_lock = PTHREAD_MUTEX_INITIALIZER;
static en_state *en_states;
/* The state of the job this thread runs (set by en_execute). */
static __thread en_state *S;
/*
 * zstd's contexts allocate through malloc: a context's workspace is resized as inputs alternate
 * between small files and 1 MiB chunks, and fresh mappings (mem_alloc) for it cost page faults each
 * time (a first backup: +0.5-0.8 sys s). The sealed outputs are mapped from 64 KiB and their blocks kept
 * for reuse (en_out_alloc, below).
 */

/*
 * Large blocks mapped and unmapped directly (mem_alloc, mem_free: native/mem-core.h), as codec.c
 * does on the read path: through malloc, the blocks freed on the pool threads stayed in their arenas.
 */
#include "mem-core.h"

/*
 * Sealed outputs (en_seal) travel to en_complete on the main thread, which copies each into a JS
 * buffer. Unmapping them there cost the main thread (the busy side of a backup) an munmap and its
 * TLB shootdown per blob (~0.1 s of a 13,700-file first backup), and each en_seal mapped a fresh
 * block whose every page then faulted in the pool. Up to EN_SPARE_MAX blocks (EN_SPARE_BYTES in
 * all) are kept instead and handed to the next en_seal they fit (mapped in MEM_BIG steps, so
 * blocks fit outputs of about their size); a freed block that does not fit replaces the smallest
 * one kept if it is larger (mem_spares, mem-core.h, as codec.c keeps its large buffers). Stale
 * bytes never leave: en_seal writes the whole sealed length it returns, and only that length is
 * copied out.
 */
#define EN_SPARE_MAX 8
#define EN_SPARE_BYTES ((size_t)8 << 20)
static mem_spares en_spares = MEM_SPARES(EN_SPARE_MAX, EN_SPARE_BYTES); /* sized by mem_total */
static uint64_t en_spare_reused, en_spare_mapped; /* encStats() */

/* The total size mem_alloc recorded in a block's header (its mapping's size from MEM_BIG). */
static size_t mem_total(const void *q) {
  size_t t;
  memcpy(&t, (const uint8_t *)q - MEM_HDR, sizeof t);
  return t;
}

static void *en_out_alloc(size_t n) {
  if (n > SIZE_MAX - MEM_HDR - MEM_BIG) return NULL;
  const size_t t = n + MEM_HDR;
  if (t < MEM_BIG) return mem_alloc(n);
  size_t got;
  void *q = mem_spare_take(&en_spares, t, &got);
  __atomic_fetch_add(q ? &en_spare_reused : &en_spare_mapped, 1, __ATOMIC_RELAXED);
  return q ? q : mem_alloc(mem_steps(t) - MEM_HDR);
}

/* encStats() -> [blocks kept, bytes kept, outputs given a kept block, outputs given a new mapping,
 * the largest zstd context bytes (ZSTD_sizeof_CCtx of its three contexts) an idle state holds,
 * the largest scratch bytes of the C delta (zd_kept) an idle state holds,
 * the most scratch bytes of the C delta any state held at once (within a call too),
 * the hash tables of a base the C delta built] (tests) */
static napi_value js_enc_stats(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value arr, x;
  pthread_mutex_lock(&en_spares.lock);
  int kept = 0;
  for (int k = 0; k < en_spares.slots; k++) kept += en_spares.b[k].p != NULL;
  double v[8] = {(double)kept, (double)en_spares.bytes, (double)__atomic_load_n(&en_spare_reused, __ATOMIC_RELAXED), (double)__atomic_load_n(&en_spare_mapped, __ATOMIC_RELAXED), 0, 0, 0,
                 (double)__atomic_load_n(&zd_table_builds, __ATOMIC_RELAXED)};
  pthread_mutex_unlock(&en_spares.lock);
  pthread_mutex_lock(&en_lock);
  for (const en_state *s = en_states; s; s = s->next) {
    const double b = (double)(ZSTD_sizeof_CCtx(s->cc) + ZSTD_sizeof_CCtx(s->probe) + ZSTD_sizeof_CCtx(s->zd.cctx));
    if (b > v[4]) v[4] = b;
    const double z = zd_kept(&s->zd);
    if (z > v[5]) v[5] = z;
    if (s->zd.peak > v[6]) v[6] = s->zd.peak;
  }
  pthread_mutex_unlock(&en_lock);
  napi_create_array_with_length(env, 8, &arr);
  for (uint32_t k = 0; k < 8; k++) {
    napi_create_double(env, v[k], &x);
    napi_set_element(env, arr, k, x);
  }
  return arr;
}

static void en_out_free(void *q) {
  if (!q) return;
  const size_t t = mem_total(q);
  if (t >= MEM_BIG && t <= EN_SPARE_BYTES) q = mem_spare_keep(&en_spares, q, t);
  mem_free(q);
}

/* Scratch k (0, 1 or 2) with room for n bytes. */
static uint8_t *en_buf(int k, size_t n) {
  if (n == 0) n = 1;
  if (S->bufCap[k] < n) {
    mem_free(S->buf[k]);
    size_t want = mem_steps(n);
    S->buf[k] = mem_alloc(want);
    S->bufCap[k] = S->buf[k] ? want : 0;
  }
  return S->buf[k];
}

static void en_trim(void) {
  for (int k = 0; k < 3; k++)
    if (S->bufCap[k] > EN_KEEP) {
      mem_free(S->buf[k]);
      S->buf[k] = NULL;
      S->bufCap[k] = 0;
    }
  zd_trim(&S->zd);
}

/* codec.ts incompressible: three PROBE-byte samples each fail to shrink at level 1. -1 no memory. */
static int en_incompressible(const uint8_t *data, size_t n) {
  if (n < EN_PROBE_MIN) return 0;
  if (!S->probe && !(S->probe = ZSTD_createCCtx())) return -1;
  uint8_t out[ZSTD_COMPRESSBOUND(EN_PROBE)];
  const size_t at[3] = {0, (n >> 1) - (EN_PROBE >> 1), n - EN_PROBE};
  for (int k = 0; k < 3; k++) {
    ZSTD_CCtx_reset(S->probe, ZSTD_reset_session_and_parameters);
    if (ZSTD_isError(ZSTD_CCtx_setParameter(S->probe, ZSTD_c_compressionLevel, 1))) return -1;
    size_t r = ZSTD_compress2(S->probe, out, sizeof out, data + at[k], EN_PROBE);
    if (ZSTD_isError(r)) return -1;
    if (r <= EN_PROBE) return 0;
  }
  return 1;
}

/* crypto.ts seal of payload into a new block (nonce || body || tag); NULL on failure. */
static uint8_t *en_seal(const uint8_t *key, const uint8_t *payload, size_t plen, size_t *outLen) {
  if (!S->enc && !(S->enc = EVP_CIPHER_CTX_new())) return NULL;
  /* from 64 KiB a kept block or a new mapping (en_out_alloc): through malloc, the pool threads' arenas kept what was freed */
  uint8_t *o = en_out_alloc(plen + EN_NONCE + EN_TAG);
  if (!o) return NULL;
  EVP_CIPHER_CTX *c = S->enc;
  int outl = 0;
  int ok = RAND_bytes(o, EN_NONCE) == 1 && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
           EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, EN_NONCE, NULL) == 1 && EVP_EncryptInit_ex(c, NULL, NULL, key, o) == 1;
  size_t done = 0;
  while (ok && done < plen) {
    size_t k = plen - done > (1u << 30) ? (1u << 30) : plen - done;
    ok = EVP_EncryptUpdate(c, o + EN_NONCE + done, &outl, payload + done, (int)k) == 1 && (size_t)outl == k;
    done += k;
  }
  ok = ok && EVP_EncryptFinal_ex(c, o + EN_NONCE + plen, &outl) == 1 && outl == 0 &&
       EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, EN_TAG, o + EN_NONCE + plen) == 1;
  if (!ok) {
    en_out_free(o);
    return NULL;
  }
  *outLen = plen + EN_NONCE + EN_TAG;
  return o;
}

/* codec.ts BlobCodec.encode of one item. */
static void en_item(const enc_ctx *key, enc_item *it) {
  const uint8_t *data = it->data;
  const size_t n = it->n;
  const int level = key->level;
  const int dict = it->hasDict && it->m > 0;
  /* best: the payload so far (in S->buf[bi], length bestLen); comp 0 = none */
  int comp = 0, bi = 0;
  size_t bestLen = 0;
  int tryZstd = dict;
  if (dict && !(it->flags & F_NO_ZDELTA)) {
    /* deltaNative: the C delta (declined: -1; no gain: 0) */
    const size_t cap = n - 1;
    if (n >= 2) {
      uint8_t *out = en_buf(0, cap);
      if (!out) goto nomem;
      size_t matched = 0;
      const int64_t r = zd_delta(&S->zd, out, cap, it->dict, it->m, data, n, level < 1 ? 1 : level > 19 ? 19 : level, &matched);
      if (r >= 0) {
        if (r > 0) {
          comp = 2;
          bi = 0;
          bestLen = (size_t)r;
        }
        const double literals = (double)n - (double)matched;
        tryZstd = r > 0 && (double)r > (double)n / 16 && (double)r < literals * 0.85;
      }
    }
  }
  if (!tryZstd) {
    /* the C delta's result stands */
  } else if (it->m <= EN_FAST_DICT && level <= EN_FAST_LEVEL) {
    /* deltaFast: zstd level 4 with the base as dictionary, into at most n - 1 bytes */
    const size_t cap = n - 1;
    if (n >= 2) {
      const int k = comp ? 1 - bi : 0;
      uint8_t *out = en_buf(k, cap);
      if (!out) goto nomem;
      if (!S->cc && !(S->cc = ZSTD_createCCtx())) goto nomem;
      size_t r = ZSTD_compress_usingDict(S->cc, out, cap, data, n, it->dict, it->m, EN_FAST_LEVEL);
      if (!ZSTD_isError(r) && (!comp || r < bestLen)) {
        comp = 2;
        bi = k;
        bestLen = r;
      }
    }
  } else {
    /* the tuned delta: window and hash sized to the base, the base loaded as a dictionary */
    size_t span = 0;
    while (span < 64 && ((double)1 * ((uint64_t)1 << span)) < (double)it->m + (double)n + 1) span++; /* ceil(log2(m + n + 1)) */
    int windowLog = span < 20 ? 20 : span > 27 ? 27 : (int)span;
    int hashLog = (int)span - 2 < 17 ? 17 : (int)span - 2 > 20 ? 20 : (int)span - 2;
    const int k = comp ? 1 - bi : 0;
    const size_t cap = ZSTD_compressBound(n);
    uint8_t *out = en_buf(k, cap);
    if (!out) goto nomem;
    if (!S->cc && !(S->cc = ZSTD_createCCtx())) goto nomem;
    ZSTD_CCtx_reset(S->cc, ZSTD_reset_session_and_parameters);
    size_t r;
    /* no compression level: codec.ts sets these through zstd-napi's setParameters, which first
     * resets the context's parameters, so the level there is zstd's default (3) too */
    /* a base zstd refuses as a dictionary (its dictionary magic first, then malformed) gives no
     * delta, not a failed blob: plain compression below, as codec.ts does */
    if (ZSTD_isError(ZSTD_CCtx_setParameter(S->cc, ZSTD_c_windowLog, windowLog)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(S->cc, ZSTD_c_hashLog, hashLog)) || ZSTD_isError(ZSTD_CCtx_loadDictionary(S->cc, it->dict, it->m)))
      r = (size_t)-1; /* an error code */
    else r = ZSTD_compress2(S->cc, out, cap, data, n);
    /* the context freed at once, with its copy of the base, the dictionary built from it and the
     * workspace sized to the base's tables (~5 MB for a 4 MiB base): this delta is rare (bases over
     * EN_FAST_DICT), and zstd keeps a workspace it has grown until it was used 128 times at a third
     * of its size, so the plain compressions after it kept the state that large */
    ZSTD_freeCCtx(S->cc);
    S->cc = NULL;
    if (!ZSTD_isError(r) && r < n && (!comp || r < bestLen)) {
      comp = 2;
      bi = k;
      bestLen = r;
    }
  }
  if (!comp || 2 * bestLen > n) {
    const int inc = en_incompressible(data, n);
    if (inc < 0) goto nomem;
    if (!inc) {
      const int k = comp ? 1 - bi : 0;
      const size_t cap = ZSTD_compressBound(n);
      uint8_t *out = en_buf(k, cap);
      if (!out) goto nomem;
      if (!S->cc && !(S->cc = ZSTD_createCCtx())) goto nomem;
      ZSTD_CCtx_reset(S->cc, ZSTD_reset_session_and_parameters);
      if (ZSTD_isError(ZSTD_CCtx_setParameter(S->cc, ZSTD_c_compressionLevel, level))) goto zerr;
      size_t r = ZSTD_compress2(S->cc, out, cap, data, n);
      if (ZSTD_isError(r)) goto zerr;
      if (r < n && (!comp || r < bestLen)) {
        comp = 1;
        bi = k;
        bestLen = r;
      }
    }
  }
  if ((it->flags & F_SKETCH) && comp != 0 && n >= EN_SKETCH_MIN) {
    /* as the worker: the sketch only for data zstd could shrink */
    memset(it->mx, 0, sizeof it->mx);
    it->sampled = sketch_into(data, n, it->mx) > 0;
  }
  if (it->flags & F_ID) {
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha256(), key->id, 32, n ? data : (const uint8_t *)"", n, it->id, &mdlen) || mdlen != 32) {
      it->err = "hashing failed";
      return;
    }
  }
  it->comp = comp;
  it->sealed = comp ? en_seal(key->enc, S->buf[bi], bestLen, &it->sealedLen) : en_seal(key->enc, data, n, &it->sealedLen);
  if (!it->sealed) it->err = "sealing failed (out of memory or a cipher error)";
  return;
nomem:
  it->err = "out of memory";
  return;
zerr:
  it->err = "zstd compression failed";
}

/*
 * small-files-worker.ts readOne: open without following a symbolic link (O_NOATIME unless refused),
 * whether it has extended attributes (flistxattr), up to size + 1 bytes (a file that grew is read
 * again by the caller's own path). 0: read (data, n set), else kind says what happened.
 */
static int en_read(enc_item *it) {
  /* O_NONBLOCK: a FIFO (or device) put in the file's place since the scan does not block the open; it is
   * then no regular file and goes to the caller's own path (kind 2), which says so */
  int fd = open(it->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME | O_NONBLOCK);
  if (fd < 0 && errno == EPERM) fd = open(it->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK); /* O_NOATIME: only for the file's owner */
  if (fd < 0) {
    it->kind = 1;
    it->err_no = errno;
    it->syscall = "open";
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    it->kind = 2;
    close(fd);
    return -1;
  }
  it->xattr = flistxattr(fd, NULL, 0) != 0;
  uint8_t *buf = en_buf(2, it->size + 1);
  if (!buf) {
    close(fd);
    it->err = "out of memory";
    return -1;
  }
  size_t got = 0;
  for (;;) {
    ssize_t r = pread(fd, buf + got, it->size + 1 - got, (off_t)got);
    if (r < 0) {
      if (errno == EINTR) continue;
      it->kind = 1;
      it->err_no = errno;
      it->syscall = "read";
      close(fd);
      return -1;
    }
    if (r == 0) break;
    got += (size_t)r;
    if (got > it->size) {
      it->kind = 2;
      close(fd);
      return -1;
    }
  }
  close(fd);
  it->data = buf;
  it->n = got;
  return 0;
}

static void en_execute(napi_env env, void *data) {
  (void)env;
  enc_job *j = data;
  pthread_mutex_lock(&en_lock);
  S = en_states;
  if (S) en_states = S->next;
  pthread_mutex_unlock(&en_lock);
  if (!S && !(S = calloc(1, sizeof *S))) {
    for (uint32_t i = 0; i < j->n; i++) j->items[i].err = "out of memory";
    return;
  }
  for (uint32_t i = 0; i < j->n; i++) {
    enc_item *it = &j->items[i];
    if (it->path) {
      if (en_read(it) != 0) continue;
      if (it->n == 0) continue; /* an empty file: no blob */
    }
    en_item(&j->key, it);
  }
  en_trim();
  pthread_mutex_lock(&en_lock);
  S->next = en_states;
  en_states = S;
  pthread_mutex_unlock(&en_lock);
  S = NULL;
}

static void en_free_job(napi_env env, enc_job *j) {
  for (int k = 0; k < 4; k++)
    if (j->refs[k]) napi_delete_reference(env, j->refs[k]);
  if (j->cb) napi_delete_reference(env, j->cb);
  if (j->work) napi_delete_async_work(env, j->work);
  if (j->items)
    for (uint32_t i = 0; i < j->n; i++) {
      en_out_free(j->items[i].sealed);
      free(j->items[i].path);
    }
  free(j->items);
  OPENSSL_cleanse(&j->key, sizeof j->key);
  free(j);
}

/* A job of n items with the context's keys; NULL (an error thrown) without memory. */
static enc_job *en_new_job(napi_env env, const enc_ctx *c, uint32_t n) {
  enc_job *j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  j->n = n;
  j->items = calloc(n ? n : 1, sizeof *j->items);
  if (!j->items) {
    en_free_job(env, j);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  memcpy(&j->key, c, sizeof *c);
  return j;
}

static void en_complete(napi_env env, napi_status st, void *data) {
  enc_job *j = data;
  napi_value cb = NULL, global, arr;
  napi_get_global(env, &global);
  if (napi_get_reference_value(env, j->cb, &cb) != napi_ok || !cb) {
    en_free_job(env, j);
    return;
  }
  /* encFiles: the sealed blobs of the batch in one buffer (one allocation, not one per file) */
  const int files = j->n > 0 && j->items[0].path != NULL;
  napi_value all = NULL;
  uint8_t *allp = NULL;
  size_t allLen = 0, at = 0;
  if (files && st == napi_ok) {
    for (uint32_t i = 0; i < j->n; i++)
      if (j->items[i].sealed) allLen += j->items[i].sealedLen;
    void *d = NULL;
    if (napi_create_buffer(env, allLen, &d, &all) != napi_ok) all = NULL;
    allp = d;
  }
  napi_create_array_with_length(env, j->n + (files ? 1 : 0), &arr);
  for (uint32_t i = 0; i < j->n; i++) {
    enc_item *it = &j->items[i];
    napi_value v, x;
    if (st != napi_ok) {
      napi_create_string_utf8(env, "cancelled", NAPI_AUTO_LENGTH, &v);
    } else if (it->err) {
      napi_create_string_utf8(env, it->err, NAPI_AUTO_LENGTH, &v);
    } else if (it->path && it->kind == 1) {
      /* [1, errno, syscall] */
      napi_create_array_with_length(env, 3, &v);
      napi_create_uint32(env, 1, &x);
      napi_set_element(env, v, 0, x);
      napi_create_int32(env, it->err_no, &x);
      napi_set_element(env, v, 1, x);
      napi_create_string_utf8(env, it->syscall, NAPI_AUTO_LENGTH, &x);
      napi_set_element(env, v, 2, x);
    } else if (it->path && it->kind == 2) {
      napi_create_array_with_length(env, 1, &v);
      napi_create_uint32(env, 2, &x);
      napi_set_element(env, v, 0, x);
    } else if (!it->sealed && !(it->path && it->n == 0)) {
      napi_create_string_utf8(env, "no result", NAPI_AUTO_LENGTH, &v);
    } else {
      /* encRun: [sealed, compression, id, sf]; encFiles: [0, size, off, len, compression, id, xattr, sf]
       * (the sealed blob at [off, off + len) of the last element); id: hex */
      napi_value sealed, comp, id, sf, undef, off, len;
      void *p;
      napi_get_undefined(env, &undef);
      sealed = comp = id = sf = off = len = undef;
      int ok = 1;
      if (it->sealed) {
        if (files) {
          ok = all != NULL;
          if (ok) {
            memcpy(allp + at, it->sealed, it->sealedLen);
            napi_create_double(env, (double)at, &off);
            napi_create_double(env, (double)it->sealedLen, &len);
            at += it->sealedLen;
          }
        } else
          ok = napi_create_buffer_copy(env, it->sealedLen, it->sealed, &p, &sealed) == napi_ok;
        en_out_free(it->sealed);
        it->sealed = NULL;
        napi_create_uint32(env, (uint32_t)it->comp, &comp);
        if (ok && (it->flags & F_ID)) {
          static const char hx[] = "0123456789abcdef";
          char h[64];
          for (int k = 0; k < 32; k++) {
            h[2 * k] = hx[it->id[k] >> 4];
            h[2 * k + 1] = hx[it->id[k] & 15];
          }
          ok = napi_create_string_latin1(env, h, 64, &id) == napi_ok;
        }
        if (ok && (it->flags & F_SKETCH) && it->comp != 0 && it->n >= EN_SKETCH_MIN) {
          napi_create_array_with_length(env, it->sampled ? FEATURES : 0, &sf);
          for (int k = 0; it->sampled && k < FEATURES; k++) {
            napi_create_uint32(env, it->mx[k], &x);
            napi_set_element(env, sf, k, x);
          }
        }
      }
      if (!ok) {
        napi_create_string_utf8(env, "out of memory", NAPI_AUTO_LENGTH, &v);
      } else if (it->path) {
        napi_value parts[8];
        napi_create_uint32(env, 0, &parts[0]);
        napi_create_double(env, (double)it->n, &parts[1]);
        parts[2] = off;
        parts[3] = len;
        parts[4] = comp;
        parts[5] = id;
        napi_create_uint32(env, it->xattr ? 1 : 0, &parts[6]);
        parts[7] = sf;
        napi_create_array_with_length(env, 8, &v);
        for (uint32_t k = 0; k < 8; k++) napi_set_element(env, v, k, parts[k]);
      } else {
        napi_create_array_with_length(env, 4, &v);
        napi_set_element(env, v, 0, sealed);
        napi_set_element(env, v, 1, comp);
        napi_set_element(env, v, 2, id);
        napi_set_element(env, v, 3, sf);
      }
    }
    napi_set_element(env, arr, i, v);
  }
  if (files) {
    if (!all) napi_get_undefined(env, &all);
    napi_set_element(env, arr, j->n, all);
  }
  en_free_job(env, j);
  napi_call_function(env, global, cb, 1, &arr, NULL);
}

static void en_finalize_ctx(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  OPENSSL_cleanse(data, sizeof(enc_ctx));
  free(data);
}

static napi_value js_enc_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], r;
  uint8_t *e, *k;
  size_t en, kn;
  double lv = 0;
  napi_valuetype t;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3 || !typed_u8(env, argv[0], &e, &en) || !typed_u8(env, argv[1], &k, &kn) ||
      en != 32 || kn != 32 || napi_typeof(env, argv[2], &t) != napi_ok || t != napi_number || napi_get_value_double(env, argv[2], &lv) != napi_ok || !(lv >= 1 && lv <= 19) ||
      lv != (double)(int)lv) {
    napi_throw_type_error(env, NULL, "encOpen(encKey: Uint8Array(32), idKey: Uint8Array(32), level: 1..19)");
    return NULL;
  }
  enc_ctx *c = malloc(sizeof *c);
  if (!c) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  memcpy(c->enc, e, 32);
  memcpy(c->id, k, 32);
  c->level = (int)lv;
  if (napi_create_external(env, c, en_finalize_ctx, NULL, &r) != napi_ok) {
    free(c);
    return NULL;
  }
  return r;
}

static napi_value js_enc_run(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  const char *usage = "encRun(ctx, data: Array<Uint8Array>, dicts: Array<Uint8Array | undefined>, flags: Uint8Array, cb: Function)";
  napi_valuetype t;
  bool isArr;
  uint32_t nd = 0, nk = 0;
  enc_ctx *c = NULL;
  uint8_t *flags;
  size_t nf;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_external ||
      napi_get_value_external(env, argv[0], (void **)&c) != napi_ok || !c || napi_is_array(env, argv[1], &isArr) != napi_ok || !isArr ||
      napi_get_array_length(env, argv[1], &nd) != napi_ok || napi_is_array(env, argv[2], &isArr) != napi_ok || !isArr ||
      napi_get_array_length(env, argv[2], &nk) != napi_ok || nd != nk || nd > EN_MAX_ITEMS || !typed_u8(env, argv[3], &flags, &nf) || nf != nd ||
      napi_typeof(env, argv[4], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  enc_job *j = en_new_job(env, c, nd);
  if (!j) return NULL;
  for (uint32_t i = 0; i < nd; i++) {
    napi_value d, k;
    enc_item *it = &j->items[i];
    if (napi_get_element(env, argv[1], i, &d) != napi_ok || napi_get_element(env, argv[2], i, &k) != napi_ok ||
        !typed_u8(env, d, (uint8_t **)&it->data, &it->n) || it->n > EN_MAX_DATA || flags[i] > 7) {
      en_free_job(env, j);
      napi_throw_type_error(env, NULL, "encRun: data[i] must be a Uint8Array of at most 256 MiB, flags[i] 0..7");
      return NULL;
    }
    if (napi_typeof(env, k, &t) != napi_ok) t = napi_null;
    if (t != napi_undefined && t != napi_null) {
      if (!typed_u8(env, k, (uint8_t **)&it->dict, &it->m) || it->m > EN_MAX_DICT) {
        en_free_job(env, j);
        napi_throw_type_error(env, NULL, "encRun: dicts[i] must be a Uint8Array of at most 512 MiB, or undefined");
        return NULL;
      }
      it->hasDict = 1;
    }
    it->flags = flags[i];
  }
  napi_value name;
  napi_create_string_utf8(env, "lifeboat:encode", NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, argv[1], 1, &j->refs[0]) != napi_ok || napi_create_reference(env, argv[2], 1, &j->refs[1]) != napi_ok ||
      napi_create_reference(env, argv[3], 1, &j->refs[2]) != napi_ok || napi_create_reference(env, argv[0], 1, &j->refs[3]) != napi_ok ||
      napi_create_reference(env, argv[4], 1, &j->cb) != napi_ok || napi_create_async_work(env, NULL, name, en_execute, en_complete, j, &j->work) != napi_ok ||
      napi_queue_async_work(env, j->work) != napi_ok) {
    en_free_job(env, j);
    napi_throw_error(env, NULL, "encRun: could not queue the job");
    return NULL;
  }
  return NULL;
}

/*
 * encFiles(ctx, paths: Array<Uint8Array>, sizes: Float64Array, flags: Uint8Array, cb): the small
 * files of a backup read, hashed, encoded and (flag 4, from the caller's size) sketched in one work
 * item (small-files-worker.ts in C). paths: no NUL byte; sizes: each file's lstat size.
 *   results[i]: [1, errno, syscall] failed, [2] grew, [0, size, off, len, compression, id, xattr, sf]
 *   (the sealed blob at [off, off + len) of results[n], one buffer for the batch; off .. id undefined
 *   for an empty file; id hex; xattr 1: the caller reads the attributes), or a string.
 */
static napi_value js_enc_files(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  const char *usage = "encFiles(ctx, paths: Array<Uint8Array>, sizes: Float64Array, flags: Uint8Array, cb: Function)";
  napi_valuetype t;
  bool isArr, isTa;
  uint32_t np = 0;
  enc_ctx *c = NULL;
  uint8_t *flags;
  size_t nf, ns;
  napi_typedarray_type st;
  void *sp = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_external ||
      napi_get_value_external(env, argv[0], (void **)&c) != napi_ok || !c || napi_is_array(env, argv[1], &isArr) != napi_ok || !isArr ||
      napi_get_array_length(env, argv[1], &np) != napi_ok || np > EN_MAX_ITEMS || napi_is_typedarray(env, argv[2], &isTa) != napi_ok || !isTa ||
      napi_get_typedarray_info(env, argv[2], &st, &ns, &sp, NULL, NULL) != napi_ok || st != napi_float64_array || ns != np || (np && !sp) ||
      !typed_u8(env, argv[3], &flags, &nf) || nf != np || napi_typeof(env, argv[4], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  const double *sizes = sp;
  enc_job *j = en_new_job(env, c, np);
  if (!j) return NULL;
  for (uint32_t i = 0; i < np; i++) {
    napi_value pv;
    enc_item *it = &j->items[i];
    uint8_t *pp;
    size_t pn;
    const double sz = sizes[i];
    if (napi_get_element(env, argv[1], i, &pv) != napi_ok || !typed_u8(env, pv, &pp, &pn) || pn == 0 || pn > EN_MAX_PATH || memchr(pp, 0, pn) ||
        !(sz >= 0 && sz <= (double)EN_MAX_FILE && sz == (double)(uint64_t)sz) || flags[i] > 7 || (flags[i] & F_NO_ZDELTA)) {
      en_free_job(env, j);
      napi_throw_type_error(env, NULL, "encFiles: paths[i] must be a Uint8Array of 1..65536 bytes without NUL, sizes[i] an integer 0..16 MiB, flags[i] 0, 1, 4 or 5");
      return NULL;
    }
    it->path = malloc(pn + 1);
    if (!it->path) {
      en_free_job(env, j);
      napi_throw_error(env, NULL, "out of memory");
      return NULL;
    }
    memcpy(it->path, pp, pn);
    it->path[pn] = 0;
    it->size = (size_t)sz;
    it->flags = flags[i];
  }
  napi_value name;
  napi_create_string_utf8(env, "lifeboat:encode-files", NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, argv[0], 1, &j->refs[0]) != napi_ok || napi_create_reference(env, argv[4], 1, &j->cb) != napi_ok ||
      napi_create_async_work(env, NULL, name, en_execute, en_complete, j, &j->work) != napi_ok || napi_queue_async_work(env, j->work) != napi_ok) {
    en_free_job(env, j);
    napi_throw_error(env, NULL, "encFiles: could not queue the job");
    return NULL;
  }
  return NULL;
}
