/*
 * Delta compression of a blob against its base in C (branch delta5): a zstd frame that
 * any zstd decoder turns back into the blob given the base as (raw-content) dictionary,
 * exactly what codec.ts BlobCodec.decode expects of a compression-2 blob: no format change.
 *
 * zstd's own match finders must index the whole base before the first byte of the blob is
 * compressed (level 4 through ZSTD_compress_usingDict: ~1 ms of the ~1.25 ms a 1 MiB chunk
 * of a daily dump costs; a two-base dictionary of over 2 MiB took the tuned path at 10-50 ms).
 * A new version of a chunk is mostly its base with a few edits at about the same place, so
 * here the matches are found directly: every ZD_STRIDE-th position of the base goes into a
 * small hash table, the blob is scanned trying first the diagonal of the previous match (an
 * edit that keeps lengths resumes it at once), then the hash; matches are extended forward
 * (memcmp, 64 bytes at a time) and backward; and zstd (ZSTD_compressSequences, linked from
 * the sources zstd-napi ships) entropy-codes the literals and sequences into a frame.
 * Offsets reach back into the base as if it preceded the blob, as a prefix or dictionary does.
 *
 * Every frame is decoded again here (ZSTD_decompress_usingDict: the readers' own semantics)
 * and compared with the blob before it is returned: a frame that would not give the blob
 * back is never stored (the caller falls back to zstd's match finder).
 *
 *   delta(out: Uint8Array, data: Uint8Array, base: Uint8Array, level: number, info: Float64Array(1)): number
 *     the frame's length in out (> 0); 0 when the frame would not be smaller than out (no gain:
 *     out.length should be data.length - 1); -1 when declined (the caller uses zstd's match
 *     finder: a base zstd would read as a formatted dictionary, sizes out of range, no memory,
 *     a frame that failed the check). info[0] = bytes of data covered by matches.
 *
 * Lengths are checked against the views; nothing is read or written outside them.
 * Context-aware (NAPI_MODULE_INIT): one state per thread (instance data), freed with it.
 */
#define _GNU_SOURCE /* O_NOATIME (encode.c) */
#define ZSTD_STATIC_LINKING_ONLY
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "zstd.h"

#define ZD_STRIDE 8   /* base positions indexed: one in ZD_STRIDE */
#define ZD_MINLEN 24  /* shortest match taken from the hash table */
#define ZD_DIAGLEN 12 /* shortest match taken on the previous match's diagonal */
#define ZD_SKIP_LOG 7 /* the step grows by one every 2^ZD_SKIP_LOG bytes without a match */
#define ZD_NEAR 256     /* a gap's first probes look this far either side of the last diagonal */
#define ZD_NEAR_AT 16   /* ... once the diagonal has failed for this many bytes */
#define ZD_NEAR_TRIES 1 /* ... at this many positions */
#define ZD_HASH_AT 64   /* the hash table is probed (and built, the first time) once a gap is this long */
#define ZD_HASH_TAIL 64  /* ... but not built for a chunk's last 64th (its tail past its base's end, usually) */
#define ZD_MAX_TOTAL ((size_t)1 << 30) /* base + data: offsets stay far inside 32 bits */
/* scratch kept between calls at most (the sequences, the check's output, the frame): a daily dump's
 * chunks (1 MiB on average) reuse theirs, and a larger one's is given back after its call (kept up
 * to 4 MiB each, a long stream's states came to hold ~6 MB apiece: every state met the largest
 * chunks sooner or later; docs/benchmarks.md, "A long stream's C heap") */
#define ZD_KEEP ((size_t)2 << 20)
#define ZD_KEEP_BITS 18 /* the base's hash table kept between calls up to 2^18 slots (1 MiB: bases to 2 MiB) */

typedef struct {
  uint32_t *table;
  int bits;
  ZSTD_Sequence *seqs;
  size_t seqCap;
  ZSTD_CCtx *cctx;
  ZSTD_DCtx *dctx;
  uint8_t *check;
  size_t checkCap;
  uint8_t *frame;
  size_t frameCap;
  double peak; /* the most scratch bytes (zd_kept) this state held at once, within a call too (tests: encStats) */
} zd_state;

/* Hash tables of a base built (tests: encStats). */
static size_t zd_table_builds;

static inline uint64_t zd_read64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static inline uint32_t zd_hash(const uint8_t *p, int bits) { return (uint32_t)((zd_read64(p) * 0x9E3779B185EBCA87ULL) >> (64 - bits)); }

/* Length of the common prefix of a and b, at most n. */
static inline size_t zd_common(const uint8_t *a, const uint8_t *b, size_t n) {
  size_t k = 0;
  while (k + 64 <= n && memcmp(a + k, b + k, 64) == 0) k += 64;
  while (k + 8 <= n) {
    uint64_t x = zd_read64(a + k) ^ zd_read64(b + k);
    if (x) return k + (size_t)(__builtin_ctzll(x) >> 3);
    k += 8;
  }
  while (k < n && a[k] == b[k]) k++;
  return k;
}

/* The scratch bytes a state holds now (tests: encStats, its idle keep and its peak). */
static double zd_kept(const zd_state *st) {
  return (double)(st->table ? sizeof(uint32_t) << st->bits : 0) + (double)st->seqCap * sizeof(ZSTD_Sequence) + (double)st->checkCap + (double)st->frameCap;
}

/* After an allocation: the state's peak. */
static inline void zd_note(zd_state *st) {
  const double k = zd_kept(st);
  if (k > st->peak) st->peak = k;
}

/* A base hash table larger than the one kept between calls (ZD_KEEP_BITS) given back. */
static void zd_drop_large_table(zd_state *st) {
  if (st->bits > ZD_KEEP_BITS) {
    free(st->table);
    st->table = NULL;
    st->bits = 0;
  }
}

/* The sequences of data against base into st->seqs: their count, or (size_t)-1 without memory. */
static size_t zd_match(zd_state *st, const uint8_t *base, size_t m, const uint8_t *data, size_t n, size_t *matched) {
  *matched = 0;
  if (m < 16 || n < 16) return 0;
  int bits = 10;
  while (bits < 20 && ((size_t)1 << bits) < m / ZD_STRIDE) bits++;
  uint32_t *t = NULL; /* the base's hash table, built on first need (a daily dump's chunk rarely needs it) */
  size_t nseq = 0, anchor = 0, i = 0;
  int64_t diag = 0; /* base position - data position of the last match: a new version starts where its base did */
  const size_t last = n - 8; /* the last position an 8-byte read fits */
  while (i <= last) {
    size_t p = 0, len = 0;
    const int64_t bp = (int64_t)i + diag;
    const size_t run = i - anchor; /* bytes since the last match */
    if (bp >= 0 && (size_t)bp + 8 <= m && zd_read64(data + i) == zd_read64(base + bp)) {
      const size_t room = n - i < m - (size_t)bp ? n - i : m - (size_t)bp;
      len = zd_common(data + i, base + bp, room);
      if (len >= ZD_DIAGLEN) p = (size_t)bp;
      else len = 0;
    }
    if (!len && run >= ZD_NEAR_AT && run < ZD_NEAR_AT + ZD_NEAR_TRIES) {
      /* once per gap: the diagonal moved a little (rows deleted or inserted nearby): look around it */
      const uint64_t v = zd_read64(data + i);
      int64_t lo = bp - ZD_NEAR, hi = bp + ZD_NEAR;
      if (lo < 0) lo = 0;
      if (hi > (int64_t)m - 8) hi = (int64_t)m - 8;
      for (int64_t q = lo; q <= hi; q++) {
        if (zd_read64(base + q) != v) continue;
        const size_t room = n - i < m - (size_t)q ? n - i : m - (size_t)q;
        const size_t l = zd_common(data + i, base + q, room);
        if (l >= ZD_MINLEN) {
          p = (size_t)q;
          len = l;
          break;
        }
      }
    }
    if (!len && run >= ZD_HASH_AT && (t || (n - i) * ZD_HASH_TAIL >= n)) {
      if (!t) {
        if (st->bits < bits) { /* only grows within a call's life, kept after it up to ZD_KEEP_BITS (zd_trim): chunks around 1 MiB would flip between two sizes (a free and an mmap each) */
          free(st->table);
          st->table = malloc(sizeof(uint32_t) << bits);
          st->bits = st->table ? bits : 0;
          if (!st->table) return (size_t)-1;
        }
        t = st->table;
        zd_note(st);
        __atomic_add_fetch(&zd_table_builds, 1, __ATOMIC_RELAXED);
        memset(t, 0, sizeof(uint32_t) << bits);
        for (size_t b = 0; b + 8 <= m; b += ZD_STRIDE) t[zd_hash(base + b, bits)] = (uint32_t)b + 1;
      }
      const uint32_t c = t[zd_hash(data + i, bits)];
      if (c) {
        const size_t q = c - 1; /* q + 8 <= m: only such positions are indexed */
        if (zd_read64(data + i) == zd_read64(base + q)) {
          const size_t room = n - i < m - q ? n - i : m - q;
          const size_t l = zd_common(data + i, base + q, room);
          if (l >= ZD_MINLEN) {
            p = q;
            len = l;
          }
        }
      }
    }
    if (!len) {
      /* the longer nothing matched, the larger the step (as zstd's fast strategies do): a run of
       * new bytes (a 64 KiB random write) costs a few thousand probes, not one per byte; the start
       * of the match after it is found again by extending backwards */
      i += 1 + ((i - anchor) >> ZD_SKIP_LOG);
      continue;
    }
    size_t j = i; /* extend backwards into the pending literals */
    while (j > anchor && p > 0 && data[j - 1] == base[p - 1]) {
      j--;
      p--;
      len++;
    }
    if (nseq == st->seqCap) {
      const size_t cap = st->seqCap ? st->seqCap * 2 : 1024;
      ZSTD_Sequence *s = realloc(st->seqs, cap * sizeof(ZSTD_Sequence));
      if (!s) return (size_t)-1;
      st->seqs = s;
      st->seqCap = cap;
      zd_note(st);
    }
    ZSTD_Sequence *s = &st->seqs[nseq++];
    s->offset = (unsigned)(m + j - p); /* back from data[j] to base[p], the base preceding the data */
    s->litLength = (unsigned)(j - anchor);
    s->matchLength = (unsigned)len;
    s->rep = 0;
    *matched += len;
    diag = (int64_t)p - (int64_t)j;
    anchor = j + len;
    i = anchor;
  }
  return nseq;
}

/* See the header: > 0 frame length, 0 no gain, -1 declined. */
static int64_t zd_delta(zd_state *st, uint8_t *out, size_t cap, const uint8_t *base, size_t m, const uint8_t *data, size_t n, int level, size_t *matched) {
  *matched = 0;
  if (m < 16 || n < 16 || m + n > ZD_MAX_TOTAL || cap == 0) return -1;
  /* zstd's readers take a dictionary starting with this magic as a formatted one, not raw content */
  if (m >= 4 && base[0] == 0x37 && base[1] == 0xA4 && base[2] == 0x30 && base[3] == 0xEC) return -1;
  const size_t nseq = zd_match(st, base, m, data, n, matched);
  /* the base's hash table is done with: a large one (over ZD_KEEP_BITS, not kept after the call
   * anyway) is freed before the frame and the check's output are allocated, so a state holds one
   * or the other, not both (an 8 MiB chunk: 8 MiB at most instead of 12) */
  zd_drop_large_table(st);
  if (nseq == (size_t)-1) return -1;
  if (nseq == 0) return 0;
  if (!st->cctx && !(st->cctx = ZSTD_createCCtx())) return -1;
  ZSTD_CCtx *c = st->cctx;
  ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
  int wl = 10;
  while (wl < 27 && ((size_t)1 << wl) < n) wl++;
  /* no match finder runs: the smallest tables; the level sets the entropy coder's effort */
  if (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level)) || ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, wl)) ||
      ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_hashLog, 6)) || ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_chainLog, 6)) ||
      ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_searchLog, 1)) || ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_strategy, ZSTD_dfast)) ||
      ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_minMatch, 4)) ||
      ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_blockDelimiters, ZSTD_sf_noBlockDelimiters)) ||
      ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_validateSequences, 0)) ||
      /* one call with the whole input and the output at hand: without these, ZSTD_compressSequences
       * (which starts as a streaming compression does) sizes the context's workspace for a stream's
       * input window (2^wl + a block: up to 8 MiB more) and output block, which it never uses */
      ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_stableInBuffer, 1)) || ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_stableOutBuffer, 1)))
    return -1;
  /* ZSTD_compressSequences writes past the end of a small dst (16 bytes of data into 15: heap
   * corruption, branch nencode): the frame goes to a buffer of compressBound first */
  const size_t bound = ZSTD_compressBound(n);
  if (st->frameCap < bound) {
    free(st->frame);
    st->frame = malloc(bound);
    st->frameCap = st->frame ? bound : 0;
    if (!st->frame) return -1;
    zd_note(st);
  }
  const size_t k = ZSTD_compressSequences(c, st->frame, bound, st->seqs, nseq, data, n);
  if (ZSTD_isError(k)) return ZSTD_getErrorCode(k) == ZSTD_error_dstSize_tooSmall ? 0 : -1;
  if (k >= cap) return 0;
  memcpy(out, st->frame, k);
  /* the readers' own decoding, compared with the blob */
  if (!st->dctx && !(st->dctx = ZSTD_createDCtx())) return -1;
  if (st->checkCap < n) {
    free(st->check);
    st->check = malloc(n);
    st->checkCap = st->check ? n : 0;
    if (!st->check) return -1;
    zd_note(st);
  }
  const size_t d = ZSTD_decompress_usingDict(st->dctx, st->check, n, out, k, base, m);
  if (ZSTD_isError(d) || d != n || memcmp(st->check, data, n) != 0) return -1;
  return (int64_t)k;
}

/* What one large chunk made grow is not kept for the thread's lifetime (after every call). */
static void zd_trim(zd_state *st) {
  zd_drop_large_table(st);
  if (st->seqCap > ZD_KEEP / sizeof(ZSTD_Sequence)) {
    free(st->seqs);
    st->seqs = NULL;
    st->seqCap = 0;
  }
  if (st->checkCap > ZD_KEEP) {
    free(st->check);
    st->check = NULL;
    st->checkCap = 0;
  }
  if (st->frameCap > ZD_KEEP) {
    free(st->frame);
    st->frame = NULL;
    st->frameCap = 0;
  }
}

static void zd_free(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  zd_state *st = data;
  if (!st) return;
  free(st->table);
  free(st->seqs);
  free(st->check);
  free(st->frame);
  ZSTD_freeCCtx(st->cctx);
  ZSTD_freeDCtx(st->dctx);
  free(st);
}

static int typed_u8(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  bool is = false;
  napi_typedarray_type type;
  void *p;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  if (napi_get_typedarray_info(env, v, &type, len, &p, NULL, NULL) != napi_ok || type != napi_uint8_array) return 0;
  if (*len > 0 && p == NULL) return 0;
  *data = p;
  return 1;
}

static napi_value js_delta(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  uint8_t *out, *data, *base;
  size_t cap, n, m, ilen;
  int32_t level;
  bool is = false;
  napi_typedarray_type itype;
  void *ip;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5 || !typed_u8(env, argv[0], &out, &cap) || !typed_u8(env, argv[1], &data, &n) ||
      !typed_u8(env, argv[2], &base, &m) || napi_get_value_int32(env, argv[3], &level) != napi_ok || napi_is_typedarray(env, argv[4], &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, argv[4], &itype, &ilen, &ip, NULL, NULL) != napi_ok || itype != napi_float64_array || ilen < 1 || ip == NULL) {
    napi_throw_type_error(env, NULL, "delta(out: Uint8Array, data: Uint8Array, base: Uint8Array, level: number, info: Float64Array(1))");
    return NULL;
  }
  zd_state *st = NULL;
  if (napi_get_instance_data(env, (void **)&st) != napi_ok) st = NULL;
  if (!st) {
    st = calloc(1, sizeof(zd_state));
    if (!st || napi_set_instance_data(env, st, zd_free, NULL) != napi_ok) {
      free(st);
      napi_throw_error(env, NULL, "delta: out of memory");
      return NULL;
    }
  }
  if (level < 1) level = 1;
  if (level > 19) level = 19;
  size_t matched = 0;
  const int64_t r = zd_delta(st, out, cap, base, m, data, n, level, &matched);
  zd_trim(st);
  ((double *)ip)[0] = (double)matched;
  napi_value v;
  napi_create_int64(env, r, &v);
  return v;
}

/* The backup's encode on libuv's thread pool (encode.c: one unit with this file). */
#include "encode.c"

NAPI_MODULE_INIT() {
  napi_value f;
  napi_create_function(env, "delta", NAPI_AUTO_LENGTH, js_delta, NULL, &f);
  napi_set_named_property(env, exports, "delta", f);
  napi_create_function(env, "encOpen", NAPI_AUTO_LENGTH, js_enc_open, NULL, &f);
  napi_set_named_property(env, exports, "encOpen", f);
  napi_create_function(env, "encRun", NAPI_AUTO_LENGTH, js_enc_run, NULL, &f);
  napi_set_named_property(env, exports, "encRun", f);
  napi_create_function(env, "encFiles", NAPI_AUTO_LENGTH, js_enc_files, NULL, &f);
  napi_set_named_property(env, exports, "encFiles", f);
  napi_create_function(env, "encStats", NAPI_AUTO_LENGTH, js_enc_stats, NULL, &f);
  napi_set_named_property(env, exports, "encStats", f);
  return exports;
}
