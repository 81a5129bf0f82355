/*
 * The restorer's batched "finish small files" (engine/restore-batch.ts): for a
 * batch of N files whose whole content is in memory and already verified, one
 * libuv work item (napi_create_async_work: a thread of the pool) does, per file,
 *
 *   openat(dirfd, tmp, O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, mode & 0755)
 *   pwrite (every byte) ; [fchown] ; [fchmod] ; futimens ; close
 *   renameat(dirfd, tmp, dirfd, name)
 *
 * so nothing is ever half-written under a final name (the temporary name is in
 * the same directory; a failure after the create removes it: unlinkat). dirfd
 * is a directory the restore opened itself (O_DIRECTORY|O_NOFOLLOW, through its
 * parent's descriptor), and every name is one path component (checked here
 * again: no '/', no NUL, not "." or "..", 1..255 bytes), so nothing is written
 * outside that directory. One thread hop per batch instead of one per file.
 *
 *   finishFiles(dirfds: Int32Array, names: Uint8Array[], datas: Uint8Array[],
 *               meta: Float64Array (6 per file: mode, uid, gid, flags, sec, nsec),
 *               tmpPrefix: Uint8Array, seq0: number): Promise<Int32Array>
 *
 * flags: 1 = fchown(uid, gid) (errors ignored: ownership is best effort),
 *        2 = fchmod(mode) (mode & 0755 under the umask is not the mode).
 * Temporary names: tmpPrefix + base36(seq0 + i) + ".tmp".
 * The promise resolves with 2 ints per file: errno (0 = published) and the
 * step that failed (1 open, 2 write, 3 chmod, 4 utimes, 5 close, 6 rename,
 * 7 invalid name).
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILES 65536
#define META 6

typedef struct {
  int dirfd;
  const uint8_t *name;
  size_t name_len;
  const uint8_t *data;
  size_t data_len;
  double meta[META];
} item_t;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref keep[3]; /* names, datas, meta: their memory is used by the worker thread */
  size_t n;
  item_t *items;
  int32_t *results;
  char prefix[128];
  size_t prefix_len;
  int64_t seq0;
} batch_t;

static int valid_name(const uint8_t *p, size_t len) {
  if (len == 0 || len > 255) return 0;
  if (memchr(p, '/', len) || memchr(p, 0, len)) return 0;
  if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) return 0;
  return 1;
}

static void tmp_name(const batch_t *b, size_t i, char *out) {
  char digits[16];
  int nd = 0;
  uint64_t v = (uint64_t)(b->seq0 + (int64_t)i);
  do {
    int d = (int)(v % 36);
    digits[nd++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
    v /= 36;
  } while (v && nd < 15);
  memcpy(out, b->prefix, b->prefix_len);
  size_t o = b->prefix_len;
  while (nd > 0) out[o++] = digits[--nd];
  memcpy(out + o, ".tmp", 5);
}

static void finish_one(const batch_t *b, size_t i, int32_t *res) {
  const item_t *it = &b->items[i];
  char name[256];
  char tmp[192];
  res[0] = 0;
  res[1] = 0;
  if (!valid_name(it->name, it->name_len)) {
    res[0] = EINVAL;
    res[1] = 7;
    return;
  }
  memcpy(name, it->name, it->name_len);
  name[it->name_len] = 0;
  tmp_name(b, i, tmp);
  int mode = (int)it->meta[0];
  int flags = (int)it->meta[3];
  int fd = openat(it->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)(mode & 0755)); /* no group/other write before the rename */
  if (fd < 0) {
    res[0] = errno;
    res[1] = 1;
    return;
  }
  int step = 0, err = 0;
  size_t off = 0;
  while (off < it->data_len) {
    ssize_t w = pwrite(fd, it->data + off, it->data_len - off, (off_t)off);
    if (w < 0) {
      if (errno == EINTR) continue;
      err = errno;
      step = 2;
      break;
    }
    if (w == 0) {
      err = EIO;
      step = 2;
      break;
    }
    off += (size_t)w;
  }
  if (!err && (flags & 1)) {
    if (fchown(fd, (uid_t)it->meta[1], (gid_t)it->meta[2]) != 0) { /* best effort, as the JavaScript path */ }
  }
  if (!err && (flags & 2) && fchmod(fd, (mode_t)(mode & 07777)) != 0) {
    err = errno;
    step = 3;
  }
  if (!err) {
    struct timespec ts[2];
    ts[0].tv_sec = (time_t)it->meta[4];
    ts[0].tv_nsec = (long)it->meta[5];
    ts[1] = ts[0];
    if (futimens(fd, ts) != 0) {
      err = errno;
      step = 4;
    }
  }
  if (close(fd) != 0 && !err && errno != EINTR) {
    err = errno;
    step = 5;
  }
  if (!err && renameat(it->dirfd, tmp, it->dirfd, name) != 0) {
    err = errno;
    step = 6;
  }
  if (err) {
    unlinkat(it->dirfd, tmp, 0);
    res[0] = err;
    res[1] = step;
  }
}

static void execute(napi_env env, void *data) {
  (void)env;
  batch_t *b = data;
  for (size_t i = 0; i < b->n; i++) finish_one(b, i, &b->results[2 * i]);
}

static void complete(napi_env env, napi_status status, void *data) {
  batch_t *b = data;
  napi_value ab, arr;
  if (status == napi_ok) {
    void *mem;
    napi_create_arraybuffer(env, b->n * 2 * sizeof(int32_t), &mem, &ab);
    memcpy(mem, b->results, b->n * 2 * sizeof(int32_t));
    napi_create_typedarray(env, napi_int32_array, b->n * 2, ab, 0, &arr);
    napi_resolve_deferred(env, b->deferred, arr);
  } else {
    napi_value msg, e;
    napi_create_string_utf8(env, "finishFiles: the work item did not run", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &e);
    napi_reject_deferred(env, b->deferred, e);
  }
  for (int k = 0; k < 3; k++)
    if (b->keep[k]) napi_delete_reference(env, b->keep[k]);
  napi_delete_async_work(env, b->work);
  free(b->items);
  free(b->results);
  free(b);
}

static int u8(napi_env env, napi_value v, const uint8_t **p, size_t *len) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return -1;
  napi_typedarray_type t;
  void *d;
  if (napi_get_typedarray_info(env, v, &t, len, &d, NULL, NULL) != napi_ok || t != napi_uint8_array) return -1;
  *p = d;
  return 0;
}

static napi_value bad(napi_env env, const char *why) {
  napi_throw_type_error(env, NULL, why);
  return NULL;
}

static napi_value js_finish_files(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  const char *usage = "finishFiles(dirfds: Int32Array, names: Uint8Array[], datas: Uint8Array[], meta: Float64Array, tmpPrefix: Uint8Array, seq0: number)";
  if (argc != 6) return bad(env, usage);
  bool is;
  napi_typedarray_type t;
  size_t n, mlen;
  void *fds, *meta;
  if (napi_is_typedarray(env, argv[0], &is) != napi_ok || !is) return bad(env, usage);
  if (napi_get_typedarray_info(env, argv[0], &t, &n, &fds, NULL, NULL) != napi_ok || t != napi_int32_array) return bad(env, usage);
  if (napi_is_typedarray(env, argv[3], &is) != napi_ok || !is) return bad(env, usage);
  if (napi_get_typedarray_info(env, argv[3], &t, &mlen, &meta, NULL, NULL) != napi_ok || t != napi_float64_array) return bad(env, usage);
  uint32_t nn, nd;
  if (napi_get_array_length(env, argv[1], &nn) != napi_ok || napi_get_array_length(env, argv[2], &nd) != napi_ok) return bad(env, usage);
  if (n > MAX_FILES || nn != n || nd != n || mlen != n * META) return bad(env, "finishFiles: the arrays' lengths do not match (or more than 65536 files)");
  const uint8_t *prefix;
  size_t plen;
  if (u8(env, argv[4], &prefix, &plen) != 0 || plen == 0 || plen > 100 || memchr(prefix, '/', plen) || memchr(prefix, 0, plen)) return bad(env, "finishFiles: tmpPrefix must be 1..100 bytes, one path component");
  int64_t seq0;
  if (napi_get_value_int64(env, argv[5], &seq0) != napi_ok || seq0 < 0) return bad(env, usage);

  batch_t *b = calloc(1, sizeof *b);
  if (!b) return bad(env, "finishFiles: out of memory");
  b->n = n;
  b->items = calloc(n ? n : 1, sizeof(item_t));
  b->results = calloc(n ? 2 * n : 1, sizeof(int32_t));
  if (!b->items || !b->results) {
    free(b->items);
    free(b->results);
    free(b);
    return bad(env, "finishFiles: out of memory");
  }
  memcpy(b->prefix, prefix, plen);
  b->prefix_len = plen;
  b->seq0 = seq0;
  for (size_t i = 0; i < n; i++) {
    item_t *it = &b->items[i];
    napi_value v;
    it->dirfd = ((int32_t *)fds)[i];
    memcpy(it->meta, (double *)meta + i * META, sizeof it->meta);
    int ok = napi_get_element(env, argv[1], (uint32_t)i, &v) == napi_ok && u8(env, v, &it->name, &it->name_len) == 0;
    ok = ok && napi_get_element(env, argv[2], (uint32_t)i, &v) == napi_ok && u8(env, v, &it->data, &it->data_len) == 0;
    double sec = it->meta[4], nsec = it->meta[5];
    ok = ok && it->dirfd >= 0 && nsec >= 0 && nsec < 1e9 && sec > -9.2e18 && sec < 9.2e18 && it->meta[0] >= 0 && it->meta[0] <= 07777;
    if (!ok) {
      free(b->items);
      free(b->results);
      free(b);
      return bad(env, "finishFiles: a name or data is not a Uint8Array, or a descriptor, mode or time is out of range");
    }
  }
  napi_value promise, rname;
  if (napi_create_promise(env, &b->deferred, &promise) != napi_ok) {
    free(b->items);
    free(b->results);
    free(b);
    return bad(env, "finishFiles: no promise");
  }
  napi_create_reference(env, argv[1], 1, &b->keep[0]);
  napi_create_reference(env, argv[2], 1, &b->keep[1]);
  napi_create_reference(env, argv[3], 1, &b->keep[2]);
  napi_create_string_utf8(env, "lifeboat:finishFiles", NAPI_AUTO_LENGTH, &rname);
  napi_create_async_work(env, NULL, rname, execute, complete, b, &b->work);
  napi_queue_async_work(env, b->work);
  return promise;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value f;
  napi_create_function(env, "finishFiles", NAPI_AUTO_LENGTH, js_finish_files, NULL, &f);
  napi_set_named_property(env, exports, "finishFiles", f);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
