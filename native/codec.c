/*
 * The read path's blob decode in C, on libuv's thread pool (branch ncodec): AES-256-GCM open,
 * zstd decompression (a delta: with its base's plaintext as dictionary) and the keyed id
 * (HMAC-SHA256) of the plaintext, exactly as codec.ts BlobCodec (decodeInto, decodeTo, decode,
 * decodeId) and crypto.ts open do: the same sealed format (nonce 12 || ciphertext || tag 16, no
 * aad), the same decompression loops and limits, the same outcome per blob. The errors come back
 * as codes (and zstd's own message) that src/repo/native-read-pool.ts turns into the JS path's
 * messages. No second V8 isolate: restore and check --read-data run no decode worker thread.
 * OpenSSL is the node binary's own (its symbols resolve there); zstd is compiled from the sources
 * zstd-napi ships (the same version the JS path uses).
 *
 *   open(encKey: Uint8Array(32), idKey: Uint8Array(32)) -> ctx (an external)
 *   run(ctx, bufs: Array<ArrayBuffer | ArrayBufferView>, steps: Float64Array, status: Float64Array,
 *       ids: Uint8Array, cb: (msgs: Array<string | undefined>) => void): undefined
 *   detach(ab: ArrayBuffer): undefined (frees a consumed input at once, as a transfer would)
 *   stats() -> Float64Array [decoder states made, scratch buffers mapped, KEEP, SPARE, bytes of idle
 *     states' buffers given back, bytes of spares given back, the idle time in ms, idle states holding buffers]
 *   idleMs(ms) -> undefined (tests: the idle time after which an idle state's buffers and the spares are freed)
 *
 * One job: `steps` (STEP numbers each) runs in order in one work item. A step:
 *   [0] src: index in bufs   [1] offset  [2] length          (the sealed blob)
 *   [3] compression 0/1/2, or -2: join (src's bytes into the job's dictionary buffer at [6]; the
 *       first part, at 0, sizes it to rawLength)
 *   [4] rawLength            [5] dst: index in bufs, or -1 (only the id: decodeId's streaming)
 *   [6] dst offset           [7] dict: index in bufs, or -1   [8] dict offset  [9] dict length
 *   (dst and dict may also name the job's buffers: -3 the joined dictionary, -4 and -5 a chain's
 *   inner levels; see rd_state.tb; a job starts with them empty)
 *   [10] flags: 1 hash the plaintext (the id into ids[32*i, +32)); 2 decode() semantics (a delta
 *        through the context's dictionary, capped streaming); without 2: decodeInto / decodeTo
 *   [11] group: once a step of a group failed, its later steps are skipped (S_SKIPPED): a chain.
 * status[2*i] = code (S_*), status[2*i+1] = a number for the message; msgs[i] = zstd's message.
 * Every index, offset and length is checked against the buffers before use: nothing is read or
 * written outside them; decompression never writes past rawLength. The buffers are referenced
 * (napi_ref) until the callback; the work item touches no JS value.
 */
#define ZSTD_STATIC_LINKING_ONLY
#define OPENSSL_SUPPRESS_DEPRECATED
#include <node_api.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include "zstd.h"

#define STEP 12
#define NONCE 12
#define TAG 16
#define MAX_RAW ((double)(256u << 20)) /* MAX_TREE_BLOB: the format's largest blob */
#define MAX_BUFS 4096
#define MAX_STEPS 65536
#define STREAM_SCRATCH (256 * 1024) /* plaintext hashed at a time (chunk-verify.ts SCRATCH) */
#ifndef KEEP
#define KEEP ((size_t)2 << 20) /* a decoder state keeps buffers up to this size between jobs (larger: SPARE) */
#endif

enum {
  S_OK = 0,
  S_RANGE = 1,     /* a range outside its buffer (aux: unused; the JS checks first) */
  S_SHORT = 2,     /* too short to be a sealed object (aux: length) */
  S_AUTH = 3,      /* authentication failed */
  S_DECOMP = 4,    /* decompression failed (msgs[i]) */
  S_LENGTH = 5,    /* decoded to aux bytes */
  S_NOBASE = 6,    /* delta without its base */
  S_SKIPPED = 7,   /* an earlier step of its group failed */
  S_NOMEM = 8,     /* out of memory */
  S_OUTLEN = 9,    /* the output is not rawLength bytes (aux: its length) */
};

typedef struct {
  uint8_t enc[32];
  uint8_t id[32];
} codec_ctx;

typedef struct {
  uint8_t *p;
  size_t n;
} view;

typedef struct {
  napi_async_work work;
  napi_ref cb;
  napi_ref *refs;
  uint32_t nrefs;
  view *bufs;
  uint32_t nbufs;
  const double *steps;
  uint32_t nsteps;
  double *status;
  uint8_t *ids;
  size_t idsLen;
  char **msgs;
  codec_ctx key;
} job;

/*
 * The state's own buffers a job's steps name by negative index: T_JOIN (-3) a dictionary joined
 * from parts (comp -2 steps), T_LVL0/T_LVL1 (-4, -5) the inner levels of a delta chain, alternately.
 * Their bytes never reach JavaScript: no allocation (and garbage) on the JS heap per chain or join.
 */
typedef struct {
  uint8_t *p;
  size_t cap, len;
  /*
   * The buffer of at most KEEP this one had before a level over KEEP made it grow: set aside for
   * the job and taken back after it (scratch_trim). Freed instead, the next job mapped a new one
   * and faulted its pages in again: a day-3 dump restore, whose chunks over 2 MiB (7 of 200) each
   * cost both inner levels that, took ~12k more page faults than the day-0 restore.
   */
  uint8_t *home;
  size_t homeCap;
} tbuf;

/*
 * A decoder's state: contexts and scratch, kept for the process's life (buffers over KEEP given
 * back after each job: buf_put). Not one per pool thread: libuv runs a job on any of its 4 threads,
 * so per-thread contexts and scratch were kept 4 times over (and a larger KEEP cost ~4x its size in
 * RSS); a job takes a state from a free list and gives it back, so there are only as many as jobs
 * ever ran at once (native-read-pool.ts runs at most `size`: 2 on 2 cores).
 */
typedef struct rd_state {
  EVP_CIPHER_CTX *cipher;
  ZSTD_DCtx *dctx;
  HMAC_CTX *hmac;
  uint8_t *scratch;
  size_t scratchCap;
  uint8_t *stream;
  uint8_t *piece;
  tbuf tb[3];
  /* when it last went idle (mem_now_ms): another job's end frees its buffers once they sat unused for the idle time (execute) */
  uint64_t idleAt;
  struct rd_state *next;
} rd_state;
static pthread_mutex_t rd_lock = PTHREAD_MUTEX_INITIALIZER;
static rd_state *rd_idle;
/* for stats(): states made, buffers (scratch, tb) newly allocated */
static uint64_t rd_made, rd_maps;
/* The state of the job this thread runs (set by execute). */
static __thread rd_state *S;

/* mem_alloc / mem_free: native/mem-core.h (shared with encode.c). */
#include "mem-core.h"
static void *zstd_alloc(void *opaque, size_t n) {
  (void)opaque;
  return mem_alloc(n);
}
static void zstd_free(void *opaque, void *p) {
  (void)opaque;
  mem_free(p);
}
static const ZSTD_customMem zmem = {zstd_alloc, zstd_free, NULL};

/*
 * Buffers over KEEP (a two-base delta's joined dictionary: 2-3.5 MiB in a dump restore) a job gave
 * back, kept for the next job of any state while they come to at most SPARE bytes in all: such a
 * buffer mapped again per job was up to ~900 page faults (KEEP is per state, SPARE for them all: a
 * KEEP of 4 MiB instead cut as many faults but kept one per state, +3-10 MB peak RSS). 8 MiB: a
 * chain whose two inner levels are over KEEP (a dump chunk over 2 MiB) gives both back, and the
 * next such chain takes both (a day-3 dump restore: 25 -> 16 buffers mapped, ~3.5k fewer faults).
 */
#ifndef SPARE
#define SPARE ((size_t)8 << 20)
#endif
#define NSPARE 4
/* An idle state's buffers, and a spare, unused for this long are given back (execute). */
#ifndef IDLE_MS
#define IDLE_MS 250
#endif
/* IDLE_MS, or what idleMs() set (tests) */
static uint64_t rd_idle_ms = IDLE_MS;
/* bytes of idle states' buffers given back (stats) */
static uint64_t rd_aged_bytes, rd_aged_bytes_spare;
#define BIG_STEP ((size_t)2 << 20)
static mem_spares rd_spares = MEM_SPARES(NSPARE, SPARE);

/* A buffer of at least n bytes (its size into *cap): a spare one if one is large enough, else mapped. */
static uint8_t *buf_get(size_t n, size_t *cap) {
  size_t want = mem_steps(n); /* in steps of 64 KiB: not a new mapping per size */
  /*
   * From 1 MiB in steps of BIG_STEP: a buffer fits the next job's slightly larger need (a chain's
   * levels grew 1.1 -> 1.5 -> 1.8 MiB, each a new mapping); pages never touched cost nothing.
   */
  if (want >= ((size_t)1 << 20) && want <= SIZE_MAX - BIG_STEP) want = (want + BIG_STEP - 1) & ~(BIG_STEP - 1);
  if (want > KEEP) {
    uint8_t *p = mem_spare_take(&rd_spares, want, cap);
    if (p) return p;
  }
  uint8_t *p = mem_alloc(want);
  *cap = p ? want : 0;
  __atomic_fetch_add(&rd_maps, 1, __ATOMIC_RELAXED);
  return p;
}

/* Gives a buffer back: over KEEP, kept as a spare if SPARE has room (a smaller spare making way), else freed. */
static void buf_put(uint8_t *p, size_t cap) {
  if (!p) return;
  if (cap > KEEP && cap <= SPARE) p = mem_spare_keep(&rd_spares, p, cap);
  mem_free(p);
}

static uint8_t *scratch(size_t n) {
  if (n == 0) n = 1;
  if (S->scratchCap < n) {
    buf_put(S->scratch, S->scratchCap);
    S->scratch = buf_get(n, &S->scratchCap);
  }
  return S->scratch;
}

/* After a job: the state keeps buffers up to KEEP; larger ones go back (buf_put). */
static void scratch_trim(void) {
  if (S->scratchCap > KEEP) {
    buf_put(S->scratch, S->scratchCap);
    S->scratch = NULL;
    S->scratchCap = 0;
  }
  for (int k = 0; k < 3; k++) {
    tbuf *b = &S->tb[k];
    if (b->cap > KEEP || (!b->p && b->home)) {
      buf_put(b->p, b->cap);
      b->p = b->home;
      b->cap = b->homeCap;
      b->len = 0;
      b->home = NULL;
      b->homeCap = 0;
    }
  }
}

/* S->tb[k] with room for n bytes (its content is lost when it grows); NULL without memory. */
static tbuf *tb_room(int k, size_t n) {
  tbuf *b = &S->tb[k];
  if (b->cap < n || !b->p) {
    /* the state's own buffer (at most KEEP) is set aside for a level over KEEP, not freed (tbuf.home) */
    if (b->p && b->cap <= KEEP && !b->home && n > KEEP) {
      b->home = b->p;
      b->homeCap = b->cap;
    } else
      buf_put(b->p, b->cap);
    b->p = buf_get(n, &b->cap);
    b->len = 0;
    if (!b->p) return NULL;
  }
  return b;
}

static char *dupmsg(const char *s) {
  size_t n = strlen(s);
  char *m = malloc(n + 1);
  if (m) memcpy(m, s, n + 1);
  return m;
}

static char *fmtmsg(const char *fmt, unsigned long long a, unsigned long long b) {
  char tmp[160];
  snprintf(tmp, sizeof tmp, fmt, a, b);
  return dupmsg(tmp);
}

/* crypto.ts open: 1 ok (plaintext of len-28 bytes at out), 0 authentication failed, -1 no memory. */
static int gcm_open(const uint8_t *key, const uint8_t *sealed, size_t len, uint8_t *out) {
  if (!S->cipher) S->cipher = EVP_CIPHER_CTX_new();
  if (!S->cipher) return -1;
  EVP_CIPHER_CTX *c = S->cipher;
  int outl = 0, ok = 1;
  size_t body = len - NONCE - TAG;
  ok = EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE, NULL) == 1 &&
       EVP_DecryptInit_ex(c, NULL, NULL, key, sealed) == 1;
  if (!ok) return -1;
  /* EVP takes int lengths: in pieces (a blob is at most MAX_RAW + 28 bytes anyway) */
  size_t done = 0;
  while (ok && done < body) {
    size_t k = body - done > (1u << 30) ? (1u << 30) : body - done;
    ok = EVP_DecryptUpdate(c, out + done, &outl, sealed + NONCE + done, (int)k) == 1 && (size_t)outl == k;
    done += k;
  }
  if (!ok) return 0;
  if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG, (void *)(sealed + len - TAG)) != 1) return 0;
  return EVP_DecryptFinal_ex(c, out + body, &outl) == 1 ? 1 : 0;
}

/* codec.ts decompressExact (and decompressCapped with expected = limit): into out[0, limit). */
static int zstd_exact(ZSTD_DCtx *d, const uint8_t *src, size_t srcLen, uint8_t *out, size_t limit, size_t *produced, char **msg) {
  ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
  if (srcLen == 0) {
    *msg = dupmsg("empty zstd payload");
    return S_DECOMP;
  }
  unsigned long long declared = ZSTD_getFrameContentSize(src, srcLen);
  if (declared == ZSTD_CONTENTSIZE_ERROR) {
    *msg = dupmsg("Could not parse Zstandard header");
    return S_DECOMP;
  }
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > limit) {
    *msg = fmtmsg("zstd frame declares %llu bytes, more than the %llu allowed", declared, limit);
    return S_DECOMP;
  }
  size_t pos = 0, consumed = 0;
  uint8_t probe[1];
  for (;;) {
    if (pos == limit) {
      ZSTD_outBuffer o = {probe, 1, 0};
      ZSTD_inBuffer in = {src + consumed, srcLen - consumed, 0};
      size_t ret = ZSTD_decompressStream(d, &o, &in);
      if (ZSTD_isError(ret)) {
        *msg = dupmsg(ZSTD_getErrorName(ret));
        return S_DECOMP;
      }
      consumed += in.pos;
      if (o.pos > 0) {
        *msg = fmtmsg("decompresses to more than the %llu bytes allowed", limit, 0);
        return S_DECOMP;
      }
      if (ret == 0 && consumed >= srcLen) break;
      if (in.pos == 0 && consumed >= srcLen) {
        *msg = dupmsg("zstd frame is truncated");
        return S_DECOMP;
      }
      continue;
    }
    ZSTD_outBuffer o = {out + pos, limit - pos, 0};
    ZSTD_inBuffer in = {src + consumed, srcLen - consumed, 0};
    size_t ret = ZSTD_decompressStream(d, &o, &in);
    if (ZSTD_isError(ret)) {
      *msg = dupmsg(ZSTD_getErrorName(ret));
      return S_DECOMP;
    }
    pos += o.pos;
    consumed += in.pos;
    if (ret == 0 && consumed >= srcLen) break;
    if (o.pos == 0 && in.pos == 0) {
      *msg = dupmsg("zstd frame is truncated");
      return S_DECOMP;
    }
  }
  *produced = pos;
  return S_OK;
}

/*
 * codec.ts CappedStream: the compressed payload arriving in pieces (push), then end(); the
 * plaintext through S->stream into the HMAC, at most `limit` bytes. The same steps, limits and
 * errors as the JavaScript, piece for piece.
 */
typedef struct {
  ZSTD_DCtx *d;
  HMAC_CTX *h;
  size_t limit, total;
  int started;
  size_t ret; /* the last decompressStream result of a call that moved bytes: 0 when a frame is complete */
} cstream;

/* One decompressStream call; at the cap, a 1-byte probe: any further output is an error. */
static int cs_step(cstream *c, const uint8_t *src, size_t n, size_t *produced, size_t *used, size_t *room, char **msg) {
  uint8_t probe[1];
  ZSTD_outBuffer o;
  if (c->total >= c->limit) {
    o = (ZSTD_outBuffer){probe, 1, 0};
    *room = 1;
  } else {
    *room = c->limit - c->total < STREAM_SCRATCH ? c->limit - c->total : STREAM_SCRATCH;
    o = (ZSTD_outBuffer){S->stream, *room, 0};
  }
  ZSTD_inBuffer in = {src, n, 0};
  size_t ret = ZSTD_decompressStream(c->d, &o, &in);
  if (ZSTD_isError(ret)) {
    *msg = dupmsg(ZSTD_getErrorName(ret));
    return S_DECOMP;
  }
  *produced = o.pos;
  *used = in.pos;
  if (o.dst == probe) {
    if (o.pos > 0) {
      *msg = fmtmsg("decompresses to more than the %llu bytes allowed", c->limit, 0);
      return S_DECOMP;
    }
    if (in.pos > 0) c->ret = ret;
    return S_OK;
  }
  if (o.pos > 0) HMAC_Update(c->h, S->stream, o.pos);
  c->total += o.pos;
  if (in.pos > 0 || o.pos > 0) c->ret = ret;
  return S_OK;
}

static int cs_push(cstream *c, const uint8_t *src, size_t n, char **msg) {
  if (n == 0) return S_OK;
  if (!c->started) {
    c->started = 1;
    ZSTD_DCtx_reset(c->d, ZSTD_reset_session_only);
    unsigned long long declared = ZSTD_getFrameContentSize(src, n);
    if (declared == ZSTD_CONTENTSIZE_ERROR) {
      *msg = dupmsg("Could not parse Zstandard header");
      return S_DECOMP;
    }
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > c->limit) {
      *msg = fmtmsg("zstd frame declares %llu bytes, more than the %llu allowed", declared, c->limit);
      return S_DECOMP;
    }
  }
  size_t consumed = 0;
  for (;;) {
    size_t produced, used, room;
    int r = cs_step(c, src + consumed, n - consumed, &produced, &used, &room, msg);
    if (r != S_OK) return r;
    consumed += used;
    if (consumed >= n && produced < room) return S_OK;
    if (produced == 0 && used == 0 && consumed < n) {
      *msg = dupmsg("zstd frame is truncated");
      return S_DECOMP;
    }
  }
}

static int cs_end(cstream *c, size_t *total, char **msg) {
  if (!c->started) {
    *msg = dupmsg("empty zstd payload");
    return S_DECOMP;
  }
  while (c->ret != 0) {
    size_t produced, used, room;
    int r = cs_step(c, NULL, 0, &produced, &used, &room, msg);
    if (r != S_OK) return r;
    if (produced == 0) {
      *msg = dupmsg("zstd frame is truncated");
      return S_DECOMP;
    }
  }
  *total = c->total;
  return S_OK;
}

#define OPEN_PIECE (64 * 1024) /* sealed bytes deciphered at a time by decodeId (codec.ts OPEN_PIECE) */

/*
 * codec.ts decodeId: the sealed bytes deciphered OPEN_PIECE at a time, each piece fed to the
 * decompressor (or the hash), nothing kept; the first problem decoding is reported only if the
 * payload authenticates. Returns the step's code; the id into `id`.
 */
static int decode_id(job *j, const uint8_t *sealed, size_t len, double comp, size_t raw, const uint8_t *dict, size_t dictLen, int hasDict, uint8_t *id,
                     double *aux, char **msg) {
  if (!S->cipher) S->cipher = EVP_CIPHER_CTX_new();
  if (!S->hmac) S->hmac = HMAC_CTX_new();
  if (!S->dctx) S->dctx = ZSTD_createDCtx_advanced(zmem);
  if (!S->stream) S->stream = mem_alloc(STREAM_SCRATCH);
  if (!S->piece) S->piece = mem_alloc(OPEN_PIECE);
  if (!S->cipher || !S->hmac || !S->dctx || !S->stream || !S->piece) return S_NOMEM;
  if (HMAC_Init_ex(S->hmac, j->key.id, 32, EVP_sha256(), NULL) != 1) return S_NOMEM;
  EVP_CIPHER_CTX *c = S->cipher;
  if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE, NULL) != 1 ||
      EVP_DecryptInit_ex(c, NULL, NULL, j->key.enc, sealed) != 1 || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG, (void *)(sealed + len - TAG)) != 1)
    return S_NOMEM;
  const uint8_t *body = sealed + NONCE;
  const size_t blen = len - NONCE - TAG;
  int problem = S_OK;
  char *pmsg = NULL;
  size_t n = 0;
  cstream cs = {S->dctx, S->hmac, raw, 0, 0, (size_t)-1};
  if (comp == 2) {
    if (!hasDict) problem = S_NOBASE;
    else {
      ZSTD_DCtx_reset(S->dctx, ZSTD_reset_session_and_parameters);
      size_t e = ZSTD_DCtx_loadDictionary_byReference(S->dctx, dict, dictLen);
      if (ZSTD_isError(e)) {
        pmsg = dupmsg(ZSTD_getErrorName(e));
        problem = S_DECOMP;
      }
    }
  }
  int authOk = 1;
  for (size_t off = 0; off < blen; off += OPEN_PIECE) {
    size_t k = blen - off < OPEN_PIECE ? blen - off : OPEN_PIECE;
    int outl = 0;
    if (EVP_DecryptUpdate(c, S->piece, &outl, body + off, (int)k) != 1 || (size_t)outl != k) {
      authOk = 0;
      break;
    }
    if (problem != S_OK) continue; /* still deciphered: the tag covers every byte */
    if (comp == 0) {
      HMAC_Update(S->hmac, S->piece, k);
      n += k;
      continue;
    }
    problem = cs_push(&cs, S->piece, k, &pmsg);
  }
  int outl = 0;
  if (authOk) authOk = EVP_DecryptFinal_ex(c, S->piece, &outl) == 1;
  if (authOk && comp != 0 && problem == S_OK) problem = cs_end(&cs, &n, &pmsg);
  if (comp == 2) ZSTD_DCtx_reset(S->dctx, ZSTD_reset_session_and_parameters);
  if (!authOk) {
    free(pmsg);
    return S_AUTH;
  }
  if (problem != S_OK) {
    *msg = pmsg;
    return problem;
  }
  if (n != raw) {
    *aux = (double)n;
    return S_LENGTH;
  }
  unsigned int mdlen = 0;
  if (HMAC_Final(S->hmac, id, &mdlen) != 1 || mdlen != 32) return S_NOMEM;
  return S_OK;
}

static int isint(double v, double max) { return v >= 0 && v <= max && v == (double)(uint64_t)v; }

/* One step; returns its status code (aux and msg set as it says). */
static int run_step(job *j, uint32_t i, double *aux, char **msg) {
  const double *s = j->steps + (size_t)i * STEP;
  const double comp = s[3], flags = s[10];
  if (!isint(s[4], MAX_RAW) || !isint(flags, 7)) return S_RANGE;
  const size_t raw = (size_t)s[4];
  const int hash = ((int)flags & 1) != 0, decodeSem = ((int)flags & 2) != 0;
  if (comp == -2) {
    /* a part of a dictionary joined here (a two-base delta's bases): no joined copy on the JS heap */
    if (!isint(s[6], MAX_RAW * 2) || j->nbufs == 0 || !isint(s[0], j->nbufs - 1) || !isint(s[1], MAX_RAW * 2) || !isint(s[2], MAX_RAW * 2)) return S_RANGE;
    view *sv = &j->bufs[(size_t)s[0]];
    if ((size_t)s[1] > sv->n || (size_t)s[2] > sv->n - (size_t)s[1]) return S_RANGE;
    const size_t at = (size_t)s[6], n = (size_t)s[2];
    tbuf *jb = &S->tb[0];
    if (at == 0) {
      /* the first part: the joined size is raw */
      if (!(jb = tb_room(0, raw))) return S_NOMEM;
      jb->len = raw;
    }
    if (!jb->p || at > jb->len || n > jb->len - at) return S_RANGE;
    if (n) memcpy(jb->p + at, sv->p + (size_t)s[1], n);
    return S_OK;
  }
  /* the destination: raw bytes of a buffer, or none (only the id) */
  uint8_t *out = NULL;
  if (s[5] == -3) {
    /* into the joined dictionary (sized by a join step before) */
    tbuf *b = &S->tb[0];
    if (!isint(s[6], MAX_RAW * 2) || !b->p || (size_t)s[6] > b->len || raw > b->len - (size_t)s[6]) return S_RANGE;
    out = b->p + (size_t)s[6];
  } else if (s[5] == -4 || s[5] == -5) {
    /* an inner level of a chain */
    tbuf *b = tb_room(s[5] == -4 ? 1 : 2, raw);
    if (s[6] != 0) return S_RANGE;
    if (!b) return S_NOMEM;
    b->len = raw;
    out = b->p;
  } else if (s[5] != -1) {
    if (!isint(s[5], j->nbufs - 1) || !isint(s[6], MAX_RAW * 2) || j->nbufs == 0) return S_RANGE;
    view *dv = &j->bufs[(size_t)s[5]];
    if ((size_t)s[6] > dv->n || raw > dv->n - (size_t)s[6]) {
      *aux = dv->n > (size_t)s[6] ? (double)(dv->n - (size_t)s[6]) : 0;
      return S_OUTLEN;
    }
    out = dv->p + (size_t)s[6];
  }
  /* the dictionary (a delta's bases) */
  const uint8_t *dict = NULL;
  size_t dictLen = 0;
  int hasDict = s[7] != -1;
  if (s[7] == -3 || s[7] == -4 || s[7] == -5) {
    /* one of the thread's buffers, as the steps before left it */
    tbuf *b = &S->tb[s[7] == -3 ? 0 : s[7] == -4 ? 1 : 2];
    if (!isint(s[8], MAX_RAW * 2) || !isint(s[9], MAX_RAW * 2) || !b->p || (size_t)s[8] > b->len || (size_t)s[9] > b->len - (size_t)s[8]) return S_RANGE;
    if (out && out < b->p + b->cap && b->p < out + raw) return S_RANGE; /* never its own dictionary */
    dict = b->p + (size_t)s[8];
    dictLen = (size_t)s[9];
  } else if (hasDict) {
    if (!isint(s[7], j->nbufs - 1) || !isint(s[8], MAX_RAW * 2) || !isint(s[9], MAX_RAW * 2) || j->nbufs == 0) return S_RANGE;
    view *v = &j->bufs[(size_t)s[7]];
    if ((size_t)s[8] > v->n || (size_t)s[9] > v->n - (size_t)s[8]) return S_RANGE;
    dict = v->p + (size_t)s[8];
    dictLen = (size_t)s[9];
  }
  if (comp != 0 && comp != 1 && comp != 2) return S_RANGE;
  if (!isint(s[0], j->nbufs - 1) || !isint(s[1], MAX_RAW * 2) || !isint(s[2], MAX_RAW * 2) || j->nbufs == 0) return S_RANGE;
  view *sv = &j->bufs[(size_t)s[0]];
  if ((size_t)s[1] > sv->n || (size_t)s[2] > sv->n - (size_t)s[1]) return S_RANGE;
  const uint8_t *sealed = sv->p + (size_t)s[1];
  const size_t len = (size_t)s[2];
  /* decodeTo/decodeInto check the delta's base before opening; decode() and decodeId after */
  if (comp == 2 && !hasDict && out && !decodeSem) return S_NOBASE;
  if (len < NONCE + TAG) {
    *aux = (double)len;
    return S_SHORT;
  }
  if (!out) return decode_id(j, sealed, len, comp, raw, dict, dictLen, hasDict, j->ids + (size_t)i * 32, aux, msg);
  const size_t plen = len - NONCE - TAG;
  /* a stored blob of the right size is deciphered straight into its place */
  int direct = comp == 0 && out && plen == raw && !(sealed < out + raw && out < sealed + len);
  uint8_t *payload = direct ? out : scratch(plen);
  if (!payload) return S_NOMEM;
  int o = gcm_open(j->key.enc, sealed, len, payload);
  if (o < 0) return S_NOMEM;
  if (o == 0) return S_AUTH;
  if (comp == 2 && !hasDict) return S_NOBASE;
  if (!S->dctx) S->dctx = ZSTD_createDCtx_advanced(zmem);
  if (!S->dctx && comp != 0) return S_NOMEM;
  size_t n = 0;
  int r = S_OK;
  if (comp == 0) {
    n = plen;
    if (n == raw && !direct) memcpy(out, payload, n);
  } else if (comp == 1) {
    r = zstd_exact(S->dctx, payload, plen, out, raw, &n, msg);
  } else if (decodeSem) {
    /* decode(): the base through the context's dictionary, capped streaming */
    ZSTD_DCtx_reset(S->dctx, ZSTD_reset_session_and_parameters);
    size_t e = ZSTD_DCtx_loadDictionary_byReference(S->dctx, dict, dictLen);
    if (ZSTD_isError(e)) {
      *msg = dupmsg(ZSTD_getErrorName(e));
      r = S_DECOMP;
    } else
      r = zstd_exact(S->dctx, payload, plen, out, raw, &n, msg);
    ZSTD_DCtx_reset(S->dctx, ZSTD_reset_session_and_parameters);
  } else {
    /* decodeTo: one-shot with the base read in place */
    if (plen == 0) {
      *msg = dupmsg("empty zstd payload");
      return S_DECOMP;
    }
    unsigned long long declared = ZSTD_getFrameContentSize(payload, plen);
    if (declared == ZSTD_CONTENTSIZE_ERROR) {
      *msg = dupmsg("Could not parse Zstandard header");
      return S_DECOMP;
    }
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > raw) {
      *msg = fmtmsg("zstd frame declares %llu bytes, more than the %llu allowed", declared, raw);
      return S_DECOMP;
    }
    size_t ret = ZSTD_decompress_usingDict(S->dctx, out, raw, payload, plen, dict, dictLen);
    if (ZSTD_isError(ret)) {
      *msg = dupmsg(ZSTD_getErrorName(ret));
      return S_DECOMP;
    }
    n = ret;
  }
  if (r != S_OK) return r;
  if (n != raw) {
    *aux = (double)n;
    return S_LENGTH;
  }
  if (hash) {
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha256(), j->key.id, 32, out, raw, j->ids + (size_t)i * 32, &mdlen) || mdlen != 32) return S_NOMEM;
  }
  return S_OK;
}

/* Whether a state holds buffers. */
static int state_holds(const rd_state *s) {
  return s->scratch || s->tb[0].p || s->tb[1].p || s->tb[2].p || s->tb[0].home || s->tb[1].home || s->tb[2].home;
}

/* Frees a state's buffers (not its contexts); they go back to the system, not to the spares. */
static size_t state_unbuffer(rd_state *s) {
  size_t n = s->scratchCap;
  mem_free(s->scratch);
  s->scratch = NULL;
  s->scratchCap = 0;
  for (int k = 0; k < 3; k++) {
    tbuf *b = &s->tb[k];
    n += b->cap + b->homeCap;
    mem_free(b->p);
    mem_free(b->home);
    memset(b, 0, sizeof *b);
  }
  return n;
}

static void execute(napi_env env, void *data) {
  (void)env;
  job *j = data;
  pthread_mutex_lock(&rd_lock);
  S = rd_idle;
  if (S) rd_idle = S->next;
  pthread_mutex_unlock(&rd_lock);
  if (!S) {
    S = calloc(1, sizeof *S);
    if (S) __atomic_fetch_add(&rd_made, 1, __ATOMIC_RELAXED);
  }
  if (!S) {
    for (uint32_t i = 0; i < j->nsteps; i++) {
      j->status[2 * (size_t)i] = S_NOMEM;
      j->status[2 * (size_t)i + 1] = 0;
    }
    return;
  }
  for (int k = 0; k < 3; k++) S->tb[k].len = 0; /* nothing of an earlier job's */
  double failed = -2; /* the last group that failed */
  for (uint32_t i = 0; i < j->nsteps; i++) {
    const double group = j->steps[(size_t)i * STEP + 11];
    double aux = 0;
    char *msg = NULL;
    int code;
    if (group >= 0 && group == failed) code = S_SKIPPED;
    else {
      code = run_step(j, i, &aux, &msg);
      if (code != S_OK && group >= 0) failed = group;
    }
    j->status[2 * (size_t)i] = code;
    j->status[2 * (size_t)i + 1] = aux;
    j->msgs[i] = msg;
  }
  scratch_trim();
  const uint64_t idle = __atomic_load_n(&rd_idle_ms, __ATOMIC_RELAXED);
  pthread_mutex_lock(&rd_lock);
  /* read under the lock: every state on the list went idle before it (no idleAt after now) */
  const uint64_t now = mem_now_ms();
  S->idleAt = now;
  /*
   * Another idle state whose buffers sat unused for IDLE_MS gives them back: the states are taken
   * last-in first-out, so where jobs run one at a time (a backup's delta bases) one state does all
   * of them, and a second one made for two jobs at once (a two-base delta's bases) kept its chain
   * levels' buffers (up to 4 x KEEP) resident for the rest of the command. Where two jobs run all the
   * time (restore, check) no state stays idle that long.
   */
  for (rd_state *x = rd_idle; x; x = x->next)
    if (x->idleAt <= now && now - x->idleAt >= idle && state_holds(x)) __atomic_fetch_add(&rd_aged_bytes, state_unbuffer(x), __ATOMIC_RELAXED);
  S->next = rd_idle;
  rd_idle = S;
  pthread_mutex_unlock(&rd_lock);
  __atomic_fetch_add(&rd_aged_bytes_spare, mem_spare_age(&rd_spares, now, idle), __ATOMIC_RELAXED);
  S = NULL;
}

static void free_job(napi_env env, job *j) {
  if (j->refs)
    for (uint32_t k = 0; k < j->nrefs; k++)
      if (j->refs[k]) napi_delete_reference(env, j->refs[k]);
  if (j->cb) napi_delete_reference(env, j->cb);
  if (j->work) napi_delete_async_work(env, j->work);
  if (j->msgs)
    for (uint32_t i = 0; i < j->nsteps; i++) free(j->msgs[i]);
  free(j->msgs);
  free(j->refs);
  free(j->bufs);
  OPENSSL_cleanse(&j->key, sizeof j->key);
  free(j);
}

static void complete(napi_env env, napi_status st, void *data) {
  job *j = data;
  napi_value cb, global, arr, undef;
  napi_get_undefined(env, &undef);
  napi_get_global(env, &global);
  if (napi_get_reference_value(env, j->cb, &cb) == napi_ok && cb) {
    napi_create_array_with_length(env, j->nsteps, &arr);
    for (uint32_t i = 0; i < j->nsteps; i++) {
      napi_value m = undef;
      if (st != napi_ok) napi_create_string_utf8(env, "cancelled", NAPI_AUTO_LENGTH, &m);
      else if (j->msgs[i]) napi_create_string_utf8(env, j->msgs[i], NAPI_AUTO_LENGTH, &m);
      napi_set_element(env, arr, i, m);
    }
    free_job(env, j);
    napi_call_function(env, global, cb, 1, &arr, NULL);
    return;
  }
  free_job(env, j);
}

/* The bytes of an ArrayBuffer or any view (Buffer, Uint8Array, Float64Array, ...). */
static int bytes_of(napi_env env, napi_value v, uint8_t **p, size_t *n) {
  bool is;
  void *d = NULL;
  if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
    if (napi_get_arraybuffer_info(env, v, &d, n) != napi_ok) return 0;
    *p = d;
    return 1;
  }
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type t;
    size_t len;
    napi_value ab;
    size_t off;
    if (napi_get_typedarray_info(env, v, &t, &len, &d, &ab, &off) != napi_ok) return 0;
    size_t el = 1;
    switch (t) {
      case napi_int16_array: case napi_uint16_array: el = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: el = 4; break;
      case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: el = 8; break;
      default: el = 1;
    }
    *p = d;
    *n = len * el;
    return 1;
  }
  if (napi_is_dataview(env, v, &is) == napi_ok && is) {
    napi_value ab;
    size_t off;
    if (napi_get_dataview_info(env, v, n, &d, &ab, &off) != napi_ok) return 0;
    *p = d;
    return 1;
  }
  return 0;
}

static void finalize_ctx(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  OPENSSL_cleanse(data, sizeof(codec_ctx));
  free(data);
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], r;
  uint8_t *e, *k;
  size_t en, kn;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 || !bytes_of(env, argv[0], &e, &en) || !bytes_of(env, argv[1], &k, &kn) || en != 32 ||
      kn != 32) {
    napi_throw_type_error(env, NULL, "open(encKey: Uint8Array(32), idKey: Uint8Array(32))");
    return NULL;
  }
  codec_ctx *c = malloc(sizeof *c);
  if (!c) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  memcpy(c->enc, e, 32);
  memcpy(c->id, k, 32);
  if (napi_create_external(env, c, finalize_ctx, NULL, &r) != napi_ok) {
    free(c);
    return NULL;
  }
  return r;
}

static napi_value js_run(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  const char *usage = "run(ctx, bufs: Array, steps: Float64Array, status: Float64Array, ids: Uint8Array, cb: Function)";
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 6) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  codec_ctx *c = NULL;
  napi_valuetype t;
  bool isArr;
  uint32_t nb = 0;
  if (napi_typeof(env, argv[0], &t) != napi_ok || t != napi_external || napi_get_value_external(env, argv[0], (void **)&c) != napi_ok || !c ||
      napi_is_array(env, argv[1], &isArr) != napi_ok || !isArr || napi_get_array_length(env, argv[1], &nb) != napi_ok || nb > MAX_BUFS ||
      napi_typeof(env, argv[5], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  uint8_t *sp, *stp, *idp;
  size_t sn, stn, idn;
  if (!bytes_of(env, argv[2], &sp, &sn) || !bytes_of(env, argv[3], &stp, &stn) || !bytes_of(env, argv[4], &idp, &idn) || sn % (STEP * 8) != 0 ||
      sn / (STEP * 8) > MAX_STEPS || stn < (sn / (STEP * 8)) * 16 || idn < (sn / (STEP * 8)) * 32 || ((uintptr_t)sp & 7) || ((uintptr_t)stp & 7)) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  job *j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  j->nsteps = (uint32_t)(sn / (STEP * 8));
  j->steps = (const double *)sp;
  j->status = (double *)stp;
  j->ids = idp;
  j->idsLen = idn;
  j->nbufs = nb;
  memcpy(&j->key, c, sizeof *c);
  j->nrefs = nb + 3;
  j->refs = calloc(j->nrefs, sizeof *j->refs);
  j->bufs = calloc(nb ? nb : 1, sizeof *j->bufs);
  j->msgs = calloc(j->nsteps ? j->nsteps : 1, sizeof *j->msgs);
  if (!j->refs || !j->bufs || !j->msgs) {
    free_job(env, j);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  for (uint32_t k = 0; k < nb; k++) {
    napi_value v;
    if (napi_get_element(env, argv[1], k, &v) != napi_ok || !bytes_of(env, v, &j->bufs[k].p, &j->bufs[k].n) ||
        napi_create_reference(env, v, 1, &j->refs[k]) != napi_ok) {
      free_job(env, j);
      napi_throw_type_error(env, NULL, "run: bufs must hold ArrayBuffers or views");
      return NULL;
    }
  }
  napi_value name;
  napi_create_string_utf8(env, "lifeboat:codec", NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, argv[2], 1, &j->refs[nb]) != napi_ok || napi_create_reference(env, argv[3], 1, &j->refs[nb + 1]) != napi_ok ||
      napi_create_reference(env, argv[4], 1, &j->refs[nb + 2]) != napi_ok || napi_create_reference(env, argv[5], 1, &j->cb) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, j, &j->work) != napi_ok || napi_queue_async_work(env, j->work) != napi_ok) {
    free_job(env, j);
    napi_throw_error(env, NULL, "run: could not queue the job");
    return NULL;
  }
  return NULL;
}

/*
 * detach(ab: ArrayBuffer): its memory is freed now, not at the next major GC (a buffer the caller
 * gave up, as WorkerPool transferred it to its worker: the sealed bytes of a decoded blob).
 */
static napi_value js_detach(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool is = false, detached = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 || napi_is_arraybuffer(env, argv[0], &is) != napi_ok || !is) {
    napi_throw_type_error(env, NULL, "detach(ab: ArrayBuffer)");
    return NULL;
  }
  if (napi_is_detached_arraybuffer(env, argv[0], &detached) == napi_ok && !detached) napi_detach_arraybuffer(env, argv[0]);
  return NULL;
}

/* stats() -> Float64Array [states made, buffers mapped, KEEP, SPARE, bytes of idle states' buffers given back,
 * bytes of spares given back (both after the idle time unused), the idle time in ms, idle states holding
 * buffers now]: for tests and measurements. */
static napi_value js_stats(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value ab, r;
  double *d;
  if (napi_create_arraybuffer(env, 8 * sizeof(double), (void **)&d, &ab) != napi_ok) return NULL;
  d[0] = (double)__atomic_load_n(&rd_made, __ATOMIC_RELAXED);
  d[1] = (double)__atomic_load_n(&rd_maps, __ATOMIC_RELAXED);
  d[2] = (double)KEEP;
  d[3] = (double)SPARE;
  d[4] = (double)__atomic_load_n(&rd_aged_bytes, __ATOMIC_RELAXED);
  d[5] = (double)__atomic_load_n(&rd_aged_bytes_spare, __ATOMIC_RELAXED);
  d[6] = (double)__atomic_load_n(&rd_idle_ms, __ATOMIC_RELAXED);
  d[7] = 0;
  pthread_mutex_lock(&rd_lock);
  for (const rd_state *x = rd_idle; x; x = x->next) d[7] += state_holds(x);
  pthread_mutex_unlock(&rd_lock);
  if (napi_create_typedarray(env, napi_float64_array, 8, ab, 0, &r) != napi_ok) return NULL;
  return r;
}

/* idleMs(ms: number) -> undefined: how long an idle state's buffers and a spare stay unused before they are
 * given back (0 .. 3600000; tests: a count of buffers mapped that must not depend on the machine's pauses). */
static napi_value js_idle_ms(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  double ms = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 || napi_get_value_double(env, argv[0], &ms) != napi_ok || !(ms >= 0 && ms <= 3600000)) {
    napi_throw_type_error(env, NULL, "idleMs(ms: number from 0 to 3600000)");
    return NULL;
  }
  __atomic_store_n(&rd_idle_ms, (uint64_t)ms, __ATOMIC_RELAXED);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value f;
  napi_create_function(env, "idleMs", NAPI_AUTO_LENGTH, js_idle_ms, NULL, &f);
  napi_set_named_property(env, exports, "idleMs", f);
  napi_create_function(env, "open", NAPI_AUTO_LENGTH, js_open, NULL, &f);
  napi_set_named_property(env, exports, "open", f);
  napi_create_function(env, "run", NAPI_AUTO_LENGTH, js_run, NULL, &f);
  napi_set_named_property(env, exports, "run", f);
  napi_create_function(env, "detach", NAPI_AUTO_LENGTH, js_detach, NULL, &f);
  napi_set_named_property(env, exports, "detach", f);
  napi_create_function(env, "stats", NAPI_AUTO_LENGTH, js_stats, NULL, &f);
  napi_set_named_property(env, exports, "stats", f);
  return exports;
}
