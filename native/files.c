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
#include <sys/syscall.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/openat2.h>
#endif

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
  /* the created mode is guessed from the umask by the caller, but a default ACL on the directory (or a
   * umask changed since) gives other bits: fstat (no disk write) says whether fchmod is needed after all */
  if (!err && !(flags & 2)) {
    struct stat st;
    if (fstat(fd, &st) != 0 || (st.st_mode & 07777) != (mode_t)(mode & 07777)) flags |= 2;
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

/*
 * Directories.
 *
 *   mkdirOpen(dirfd, name: Uint8Array): Promise<Float64Array [fd or -errno, uid, gid]>
 *     mkdirat(dirfd, name, 0700), then openat(dirfd, name, O_RDONLY|O_DIRECTORY|O_NOFOLLOW)
 *     and fstat: the directory the restore just made, held open (one thread hop, not two).
 *     EEXIST: nothing opened (the caller looks at what is there).
 *
 *   setDirsMeta(rootfd, rels: Uint8Array[], meta: Float64Array (6 per dir, as finishFiles)):
 *     Promise<Int32Array [errno, step] per dir>, in order (deepest first, as given):
 *     open the directory `rel` below rootfd without following any symbolic link
 *     (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS, or one
 *     openat(O_NOFOLLOW|O_DIRECTORY) per component where openat2 is missing),
 *     then [fchown], fchmod, futimens, close. Steps: 1 open, 3 chmod, 4 utimes, 7 invalid path.
 */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int dirfd;
  char name[256];
  double out[3];
} mkdir_t;

static void mkdir_execute(napi_env env, void *data) {
  (void)env;
  mkdir_t *m = data;
  if (mkdirat(m->dirfd, m->name, 0700) != 0) {
    m->out[0] = -errno;
    return;
  }
  int fd = openat(m->dirfd, m->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    m->out[0] = -errno;
    return;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    m->out[0] = -errno;
    close(fd);
    return;
  }
  m->out[0] = fd;
  m->out[1] = st.st_uid;
  m->out[2] = st.st_gid;
}

static void mkdir_complete(napi_env env, napi_status status, void *data) {
  mkdir_t *m = data;
  napi_value ab, arr;
  void *mem;
  if (status != napi_ok) m->out[0] = -EIO;
  napi_create_arraybuffer(env, sizeof m->out, &mem, &ab);
  memcpy(mem, m->out, sizeof m->out);
  napi_create_typedarray(env, napi_float64_array, 3, ab, 0, &arr);
  napi_resolve_deferred(env, m->deferred, arr);
  napi_delete_async_work(env, m->work);
  free(m);
}

static napi_value js_mkdir_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t dirfd;
  const uint8_t *name;
  size_t len;
  if (argc != 2 || napi_get_value_int32(env, argv[0], &dirfd) != napi_ok || dirfd < 0 || u8(env, argv[1], &name, &len) != 0) return bad(env, "mkdirOpen(dirfd: number, name: Uint8Array)");
  if (!valid_name(name, len)) return bad(env, "mkdirOpen: the name is not one path component");
  mkdir_t *m = calloc(1, sizeof *m);
  if (!m) return bad(env, "mkdirOpen: out of memory");
  m->dirfd = dirfd;
  memcpy(m->name, name, len);
  m->name[len] = 0;
  napi_value promise, rname;
  if (napi_create_promise(env, &m->deferred, &promise) != napi_ok) {
    free(m);
    return bad(env, "mkdirOpen: no promise");
  }
  napi_create_string_utf8(env, "lifeboat:mkdirOpen", NAPI_AUTO_LENGTH, &rname);
  napi_create_async_work(env, NULL, rname, mkdir_execute, mkdir_complete, m, &m->work);
  napi_queue_async_work(env, m->work);
  return promise;
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref keep;
  int rootfd;
  size_t n;
  item_t *items; /* name = the relative path; data unused */
  int32_t *results;
} dirs_t;

/* Open `rel` (components separated by '/') below rootfd, never through a symbolic link. */
static int open_beneath(int rootfd, const uint8_t *rel, size_t len) {
  char path[4097];
  if (len == 0 || len > 4096 || memchr(rel, 0, len)) {
    errno = EINVAL;
    return -1;
  }
  memcpy(path, rel, len);
  path[len] = 0;
  /* every component must be a plain name: no "", ".", ".." (nor a leading '/') */
  for (char *c = path;;) {
    char *e = strchr(c, '/');
    size_t cl = e ? (size_t)(e - c) : strlen(c);
    if (!valid_name((const uint8_t *)c, cl)) {
      errno = EINVAL;
      return -1;
    }
    if (!e) break;
    c = e + 1;
  }
#if defined(__linux__) && defined(SYS_openat2)
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  int fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how);
  if (fd >= 0 || (errno != ENOSYS && errno != EPERM && errno != E2BIG)) return fd;
#endif
  /* one component at a time */
  int cur = rootfd;
  char *c = path;
  for (;;) {
    char *e = strchr(c, '/');
    if (e) *e = 0;
    int next = openat(cur, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    if (cur != rootfd) close(cur);
    if (next < 0) {
      errno = err;
      return -1;
    }
    cur = next;
    if (!e) return cur;
    c = e + 1;
  }
}

static void dirs_execute(napi_env env, void *data) {
  (void)env;
  dirs_t *d = data;
  for (size_t i = 0; i < d->n; i++) {
    const item_t *it = &d->items[i];
    int32_t *res = &d->results[2 * i];
    int fd = open_beneath(d->rootfd, it->name, it->name_len);
    if (fd < 0) {
      res[0] = errno;
      res[1] = errno == EINVAL ? 7 : 1;
      continue;
    }
    int flags = (int)it->meta[3];
    if (flags & 1) {
      if (fchown(fd, (uid_t)it->meta[1], (gid_t)it->meta[2]) != 0) { /* best effort */ }
    }
    struct timespec ts[2];
    ts[0].tv_sec = (time_t)it->meta[4];
    ts[0].tv_nsec = (long)it->meta[5];
    ts[1] = ts[0];
    if (fchmod(fd, (mode_t)((int)it->meta[0] & 07777)) != 0) {
      res[0] = errno;
      res[1] = 3;
    } else if (futimens(fd, ts) != 0) {
      res[0] = errno;
      res[1] = 4;
    }
    close(fd);
  }
}

static void dirs_complete(napi_env env, napi_status status, void *data) {
  dirs_t *d = data;
  napi_value ab, arr;
  void *mem;
  if (status != napi_ok)
    for (size_t i = 0; i < d->n; i++) d->results[2 * i] = EIO, d->results[2 * i + 1] = 1;
  napi_create_arraybuffer(env, d->n * 2 * sizeof(int32_t), &mem, &ab);
  memcpy(mem, d->results, d->n * 2 * sizeof(int32_t));
  napi_create_typedarray(env, napi_int32_array, d->n * 2, ab, 0, &arr);
  napi_resolve_deferred(env, d->deferred, arr);
  napi_delete_reference(env, d->keep);
  napi_delete_async_work(env, d->work);
  free(d->items);
  free(d->results);
  free(d);
}

static napi_value js_set_dirs_meta(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  const char *usage = "setDirsMeta(rootfd: number, rels: Uint8Array[], meta: Float64Array)";
  int32_t rootfd;
  bool is;
  napi_typedarray_type t;
  size_t mlen;
  void *meta;
  uint32_t n;
  if (argc != 3 || napi_get_value_int32(env, argv[0], &rootfd) != napi_ok || rootfd < 0) return bad(env, usage);
  if (napi_get_array_length(env, argv[1], &n) != napi_ok || n > 16 * MAX_FILES) return bad(env, usage);
  if (napi_is_typedarray(env, argv[2], &is) != napi_ok || !is) return bad(env, usage);
  if (napi_get_typedarray_info(env, argv[2], &t, &mlen, &meta, NULL, NULL) != napi_ok || t != napi_float64_array || mlen != (size_t)n * META) return bad(env, usage);
  dirs_t *d = calloc(1, sizeof *d);
  if (!d) return bad(env, "setDirsMeta: out of memory");
  d->rootfd = rootfd;
  d->n = n;
  d->items = calloc(n ? n : 1, sizeof(item_t));
  d->results = calloc(n ? 2 * (size_t)n : 1, sizeof(int32_t));
  if (!d->items || !d->results) {
    free(d->items);
    free(d->results);
    free(d);
    return bad(env, "setDirsMeta: out of memory");
  }
  for (uint32_t i = 0; i < n; i++) {
    item_t *it = &d->items[i];
    napi_value v;
    memcpy(it->meta, (double *)meta + (size_t)i * META, sizeof it->meta);
    double nsec = it->meta[5], sec = it->meta[4];
    int ok = napi_get_element(env, argv[1], i, &v) == napi_ok && u8(env, v, &it->name, &it->name_len) == 0;
    ok = ok && nsec >= 0 && nsec < 1e9 && sec > -9.2e18 && sec < 9.2e18 && it->meta[0] >= 0 && it->meta[0] <= 07777;
    if (!ok) {
      free(d->items);
      free(d->results);
      free(d);
      return bad(env, "setDirsMeta: a path is not a Uint8Array, or a mode or time is out of range");
    }
  }
  napi_value promise, rname;
  if (napi_create_promise(env, &d->deferred, &promise) != napi_ok) {
    free(d->items);
    free(d->results);
    free(d);
    return bad(env, "setDirsMeta: no promise");
  }
  napi_create_reference(env, argv[1], 1, &d->keep);
  napi_create_string_utf8(env, "lifeboat:setDirsMeta", NAPI_AUTO_LENGTH, &rname);
  napi_create_async_work(env, NULL, rname, dirs_execute, dirs_complete, d, &d->work);
  napi_queue_async_work(env, d->work);
  return promise;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value f;
  napi_create_function(env, "finishFiles", NAPI_AUTO_LENGTH, js_finish_files, NULL, &f);
  napi_set_named_property(env, exports, "finishFiles", f);
  napi_create_function(env, "mkdirOpen", NAPI_AUTO_LENGTH, js_mkdir_open, NULL, &f);
  napi_set_named_property(env, exports, "mkdirOpen", f);
  napi_create_function(env, "setDirsMeta", NAPI_AUTO_LENGTH, js_set_dirs_meta, NULL, &f);
  napi_set_named_property(env, exports, "setDirsMeta", f);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
