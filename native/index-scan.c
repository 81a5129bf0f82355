/*
 * An index file's JSON read in C (issue 18: opening a repository): the bytes
 * Lifeboat writes (JSON.stringify of docs/format.md "Index files", no white
 * space) scanned straight into the columns src/repo/index.ts keeps, instead of
 * JSON.parse building an object per blob, then checking and copying each one.
 *
 *   scan(json: Uint8Array, limits: Float64Array(4)) -> null | {
 *     packIds: Buffer(P * 32), packEnd: Uint32Array(P),
 *     ids: Buffer(N * 32), num: Uint32Array(N * 4), sf: Uint32Array(S), bases: Buffer(B * 32) }
 *
 *   limits = [largest data blob, largest tree blob, seal overhead, largest pack]
 *   (pack.ts, so the limits have one source). packEnd[p] = blobs of packs 0..p.
 *   num per blob = [offset, length, rawLength, flags]; flags: bits 0-1 the
 *   compression, bit 2 a tree blob, bits 8-12 the sketch's length (its words
 *   next in sf), bit 16 a base, bit 17 a second base (their ids next in bases).
 *
 * null is "not in the form this scanner takes", never an error: the caller then
 * parses and checks the file with JSON.parse as before (src/repo/index-scan.ts),
 * which gives every error and every refused entry its message. So anything
 * unusual declines: white space, escapes, a key twice or an unknown key, a
 * number that is not a plain decimal integer up to 2^32 - 1, an empty or
 * over-long sketch, a base where the compression is not 2 (or none where it
 * is), and any entry the format's limits refuse (pack.ts blobEntryProblem).
 * What it takes, it takes with the same values JSON.parse and the checks give.
 *
 * The input is untrusted (a repository's index file, authenticated but written
 * by whoever holds the key): every read is bounds-checked against the view, the
 * grammar is fixed (no recursion), and the columns are malloc'd arrays grown as
 * entries are read (each entry takes more bytes of input than of columns),
 * copied into the returned buffers at the end and freed on every path.
 */
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "napi-typed.h"

typedef struct {
  const uint8_t *p, *e;
  double lim[4];
  /* what was read so far, and the room malloc'd for it (grown by doubling) */
  size_t P, N, S, B;
  size_t capP, capP2, capN, capN2, capS, capB;
  int oom;
  uint8_t *packIds, *ids, *bases;
  uint32_t *packEnd, *num, *sf;
} scan_t;

/* Room for `want` elements of `size` bytes in *a (capacity *cap); 0 without memory. */
static int room(void **a, size_t *cap, size_t want, size_t size) {
  if (want <= *cap) return 1;
  size_t c = *cap ? *cap : 256;
  while (c < want) c *= 2;
  void *n = realloc(*a, c * size);
  if (!n) return 0;
  *a = n;
  *cap = c;
  return 1;
}

static void scan_free(scan_t *s) {
  free(s->packIds);
  free(s->ids);
  free(s->bases);
  free(s->packEnd);
  free(s->num);
  free(s->sf);
}

/* a byte's value as a lowercase hex digit, or -1 */
static const int8_t HEXV[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};

static int ch(scan_t *s, uint8_t c) {
  if (s->p < s->e && *s->p == c) {
    s->p++;
    return 1;
  }
  return 0;
}

static int lit(scan_t *s, const char *t, size_t n) {
  if ((size_t)(s->e - s->p) < n || memcmp(s->p, t, n) != 0) return 0;
  s->p += n;
  return 1;
}

/* "<64 lowercase hex digits>" into out (32 bytes) when out is not NULL. */
static int hex64(scan_t *s, uint8_t *out) {
  if (s->e - s->p < 66 || s->p[0] != '"' || s->p[65] != '"') return 0;
  for (int i = 0; i < 32; i++) {
    const int hi = HEXV[s->p[1 + 2 * i]], lo = HEXV[s->p[2 + 2 * i]];
    if ((hi | lo) < 0) return 0;
    if (out) out[i] = (uint8_t)((hi << 4) | lo);
  }
  s->p += 66;
  return 1;
}

/* A plain decimal integer (no sign, fraction, exponent or leading zero) up to 2^32 - 1. */
static int u32(scan_t *s, uint32_t *v) {
  const uint8_t *q = s->p;
  uint64_t x = 0;
  int n = 0;
  while (q < s->e && *q >= '0' && *q <= '9') {
    if (++n > 10) return 0;
    x = x * 10 + (uint64_t)(*q - '0');
    q++;
  }
  if (n == 0 || (n > 1 && s->p[0] == '0') || x > 0xffffffffULL) return 0;
  /* 1.5, 1e3: JSON.parse would take them; this scanner leaves them to it */
  if (q < s->e && (*q == '.' || *q == 'e' || *q == 'E')) return 0;
  *v = (uint32_t)x;
  s->p = q;
  return 1;
}

/* "name": with name one of names (at most 16 bytes, no escapes): its number, or -1. */
static int key(scan_t *s, const char *const *names, int count) {
  if (!ch(s, '"')) return -1;
  const uint8_t *q = s->p;
  while (q < s->e && *q != '"' && q - s->p <= 16) q++;
  if (q >= s->e || *q != '"' || q + 1 >= s->e || q[1] != ':') return -1;
  const size_t n = (size_t)(q - s->p);
  for (int k = 0; k < count; k++) {
    if (strlen(names[k]) == n && memcmp(names[k], s->p, n) == 0) {
      s->p = q + 2;
      return k;
    }
  }
  return -1;
}

/*
 * '{' "key":value (',' "key":value)* '}' with each key one of names and at most once (the keys
 * seen into *seen); value(s, k, ctx) reads key k's value.
 */
static int object(scan_t *s, const char *const *names, int count, uint32_t *seen, int (*value)(scan_t *, int, void *), void *ctx) {
  *seen = 0;
  if (!ch(s, '{')) return 0;
  for (;;) {
    const int k = key(s, names, count);
    if (k < 0 || (*seen & (1u << k)) || !value(s, k, ctx)) return 0;
    *seen |= 1u << k;
    if (!ch(s, ',')) return ch(s, '}');
  }
}

/* '[' ']' or '[' item (',' item)* ']' */
static int array(scan_t *s, int (*item)(scan_t *)) {
  if (!ch(s, '[')) return 0;
  if (ch(s, ']')) return 1;
  do {
    if (!item(s)) return 0;
  } while (ch(s, ','));
  return ch(s, ']');
}

enum { B_ID, B_TYPE, B_OFFSET, B_LENGTH, B_RAW, B_COMP, B_BASE, B_BASE2, B_SF, B_KEYS };
static const char *const BLOB_KEYS[B_KEYS] = {"id", "type", "offset", "length", "rawLength", "compression", "base", "base2", "sf"};
#define B_REQUIRED ((1u << B_ID) | (1u << B_TYPE) | (1u << B_OFFSET) | (1u << B_LENGTH) | (1u << B_RAW) | (1u << B_COMP))

typedef struct {
  uint32_t off, len, raw, comp, sfv[16];
  uint8_t id[32], b1[32], b2[32];
  int tree, nsf;
} blob_t;

static int blob_value(scan_t *s, int k, void *ctx) {
  blob_t *b = ctx;
  switch (k) {
    case B_ID:
      return hex64(s, b->id);
    case B_TYPE:
      if (lit(s, "\"data\"", 6)) b->tree = 0;
      else if (lit(s, "\"tree\"", 6)) b->tree = 1;
      else return 0;
      return 1;
    case B_OFFSET:
      return u32(s, &b->off);
    case B_LENGTH:
      return u32(s, &b->len);
    case B_RAW:
      return u32(s, &b->raw);
    case B_COMP:
      return u32(s, &b->comp) && b->comp <= 2;
    case B_BASE:
      return hex64(s, b->b1);
    case B_BASE2:
      return hex64(s, b->b2);
    case B_SF:
      if (!ch(s, '[')) return 0;
      do {
        if (b->nsf == 16 || !u32(s, &b->sfv[b->nsf])) return 0; /* also an empty sketch: [] */
        b->nsf++;
      } while (ch(s, ','));
      return ch(s, ']');
  }
  return 0;
}

static int blob(scan_t *s) {
  blob_t b;
  uint32_t seen;
  b.off = b.len = b.raw = b.comp = 0;
  b.tree = b.nsf = 0;
  if (!object(s, BLOB_KEYS, B_KEYS, &seen, blob_value, &b)) return 0;
  if ((seen & B_REQUIRED) != B_REQUIRED) return 0;
  const int nb = (seen & (1u << B_BASE)) ? ((seen & (1u << B_BASE2)) ? 2 : 1) : 0;
  if (b.comp == 2 ? nb == 0 : (seen & ((1u << B_BASE) | (1u << B_BASE2))) != 0) return 0;
  if ((seen & (1u << B_BASE2)) && !(seen & (1u << B_BASE))) return 0;
  /* pack.ts blobEntryProblem: such an entry is refused there, with its reason */
  const double o = b.off, l = b.len, r = b.raw, seal = s->lim[2];
  if (r > (b.tree ? s->lim[1] : s->lim[0]) || l < seal || l > r + seal || (b.comp == 0 && l != r + seal) || o + l + 4 > s->lim[3]) return 0;
  if (!room((void **)&s->ids, &s->capN, s->N + 1, 32) || !room((void **)&s->num, &s->capN2, s->N + 1, 16) ||
      !room((void **)&s->sf, &s->capS, s->S + (size_t)b.nsf, 4) || !room((void **)&s->bases, &s->capB, s->B + (size_t)nb, 32)) {
    s->oom = 1;
    return 0;
  }
  memcpy(s->ids + s->N * 32, b.id, 32);
  uint32_t *n = s->num + s->N * 4;
  n[0] = b.off;
  n[1] = b.len;
  n[2] = b.raw;
  n[3] = b.comp | (b.tree ? 4u : 0u) | ((uint32_t)b.nsf << 8) | (nb >= 1 ? 1u << 16 : 0u) | (nb == 2 ? 1u << 17 : 0u);
  for (int i = 0; i < b.nsf; i++) s->sf[s->S + (size_t)i] = b.sfv[i];
  if (nb >= 1) memcpy(s->bases + s->B * 32, b.b1, 32);
  if (nb == 2) memcpy(s->bases + (s->B + 1) * 32, b.b2, 32);
  s->N++;
  s->S += (size_t)b.nsf;
  s->B += (size_t)nb;
  return 1;
}

enum { P_ID, P_BLOBS, P_KEYS };
static const char *const PACK_KEYS[P_KEYS] = {"id", "blobs"};

static int pack_value(scan_t *s, int k, void *id) { return k == P_ID ? hex64(s, id) : array(s, blob); }

static int pack(scan_t *s) {
  uint32_t seen;
  uint8_t id[32];
  if (!object(s, PACK_KEYS, P_KEYS, &seen, pack_value, id) || seen != 3u || s->N > 0xffffffffULL) return 0;
  if (!room((void **)&s->packIds, &s->capP, s->P + 1, 32) || !room((void **)&s->packEnd, &s->capP2, s->P + 1, 4)) {
    s->oom = 1;
    return 0;
  }
  memcpy(s->packIds + s->P * 32, id, 32);
  s->packEnd[s->P] = (uint32_t)s->N;
  s->P++;
  return 1;
}

enum { F_V, F_PACKS, F_KEYS };
static const char *const FILE_KEYS[F_KEYS] = {"v", "packs"};

static int file_value(scan_t *s, int k, void *ctx) {
  uint32_t v = 0;
  (void)ctx;
  return k == F_V ? u32(s, &v) && v == 1 : array(s, pack);
}

static int file(scan_t *s) {
  uint32_t seen;
  return object(s, FILE_KEYS, F_KEYS, &seen, file_value, NULL) && seen == 3u && s->p == s->e;
}

/* A Buffer of n bytes (its data into *out), or NULL. */
static napi_value buffer(napi_env env, size_t n, uint8_t **out) {
  napi_value b;
  void *d = NULL;
  if (napi_create_buffer(env, n, &d, &b) != napi_ok) return NULL;
  *out = d;
  return b;
}

/* A Uint32Array of n elements (its data into *out), or NULL. */
static napi_value words(napi_env env, size_t n, uint32_t **out) {
  napi_value ab, ta;
  void *d = NULL;
  if (napi_create_arraybuffer(env, n * 4, &d, &ab) != napi_ok || napi_create_typedarray(env, napi_uint32_array, n, ab, 0, &ta) != napi_ok) return NULL;
  *out = d;
  return ta;
}

static napi_value js_scan(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], nul;
  void *jp, *lp;
  size_t jlen, llen;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 || !typed(env, argv[0], napi_uint8_array, &jp, &jlen) ||
      !typed(env, argv[1], napi_float64_array, &lp, &llen) || llen != 4) {
    napi_throw_type_error(env, NULL, "scan(json: Uint8Array, limits: Float64Array(4))");
    return NULL;
  }
  napi_get_null(env, &nul);
  scan_t sc;
  memset(&sc, 0, sizeof sc);
  memcpy(sc.lim, lp, sizeof sc.lim);
  sc.p = jp;
  sc.e = sc.p + jlen;
  if (!file(&sc)) {
    const int oom = sc.oom;
    scan_free(&sc);
    if (oom) napi_throw_error(env, NULL, "scan: out of memory");
    return oom ? NULL : nul;
  }
  uint8_t *packIdsP = NULL, *idsP = NULL, *basesP = NULL;
  uint32_t *packEndP = NULL, *numP = NULL, *sfP = NULL;
  napi_value packIds = buffer(env, sc.P * 32, &packIdsP), packEnd = words(env, sc.P, &packEndP), ids = buffer(env, sc.N * 32, &idsP),
             num = words(env, sc.N * 4, &numP), sf = words(env, sc.S, &sfP), bases = buffer(env, sc.B * 32, &basesP);
  if (!packIds || !packEnd || !ids || !num || !sf || !bases) {
    scan_free(&sc);
    napi_throw_error(env, NULL, "scan: out of memory");
    return NULL;
  }
  /* memcpy with a length of 0 wants valid pointers all the same: only what there is */
  if (sc.P) {
    memcpy(packIdsP, sc.packIds, sc.P * 32);
    memcpy(packEndP, sc.packEnd, sc.P * 4);
  }
  if (sc.N) {
    memcpy(idsP, sc.ids, sc.N * 32);
    memcpy(numP, sc.num, sc.N * 16);
  }
  if (sc.S) memcpy(sfP, sc.sf, sc.S * 4);
  if (sc.B) memcpy(basesP, sc.bases, sc.B * 32);
  scan_free(&sc);
  napi_value out;
  napi_create_object(env, &out);
  napi_set_named_property(env, out, "packIds", packIds);
  napi_set_named_property(env, out, "packEnd", packEnd);
  napi_set_named_property(env, out, "ids", ids);
  napi_set_named_property(env, out, "num", num);
  napi_set_named_property(env, out, "sf", sf);
  napi_set_named_property(env, out, "bases", bases);
  return out;
}

NAPI_MODULE_INIT() {
  napi_value f;
  napi_create_function(env, "scan", NAPI_AUTO_LENGTH, js_scan, NULL, &f);
  napi_set_named_property(env, exports, "scan", f);
  return exports;
}
