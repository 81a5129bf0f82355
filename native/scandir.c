/*
 * One directory of a files backup's walk in one thread-pool work item
 * (src/engine/scan-native.ts): open (never following a final symlink), read
 * every entry, sort the names bytewise (the order of a tree) and lstat each
 * entry (fstatat with AT_SYMLINK_NOFOLLOW, relative to the open directory, so
 * a directory renamed meanwhile is still the one listed). The JavaScript walk
 * made one round trip for the listing and one per entry for its lstat; this is
 * one per directory. scan-native.ts keeps the JavaScript path as the fallback.
 *
 *   scanDir(path: Buffer, cb: (errno: number, count: number, out?: Buffer) => void): void
 *     errno != 0: the directory could not be opened or read (no out).
 *     out: count * FIELDS float64 (see the field list below), then count uint32
 *     name ends, then the names' bytes. An entry whose lstat failed (vanished
 *     meanwhile) has its errno in its last field and zeros elsewhere.
 *
 * Every number is a double: exact for sizes, link counts, ids and seconds below
 * 2^53; dev and inode are rounded as JavaScript's Number(bigint) rounds them.
 * Context-aware (NAPI_MODULE_INIT).
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* dev, ino, mode, nlink, uid, gid, rdev, size, blocks, mtime s, mtime ns, ctime s, ctime ns, errno */
#define FIELDS 14

typedef struct {
  uint32_t off, len;
} ent_t;

typedef struct {
  napi_async_work work;
  napi_ref cb;
  char *path;
  int err;
  size_t count;
  char *names; /* the names as read */
  size_t names_len, names_cap;
  ent_t *ents;
  size_t ents_cap;
  uint8_t *out; /* the packed result */
  size_t out_len;
} job_t;

/* qsort's comparator has no context argument in C99; qsort_r (GNU) has one. */
static int cmp_ent_r(const void *a, const void *b, void *base) {
  const ent_t *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp((const char *)base + x->off, (const char *)base + y->off, n);
  if (c) return c;
  return x->len < y->len ? -1 : x->len > y->len ? 1 : 0;
}

static int add_name(job_t *j, const char *name, size_t len) {
  if (j->count == j->ents_cap) {
    size_t cap = j->ents_cap ? j->ents_cap * 2 : 64;
    ent_t *e = realloc(j->ents, cap * sizeof(ent_t));
    if (!e) return ENOMEM;
    j->ents = e;
    j->ents_cap = cap;
  }
  if (j->names_len + len + 1 > j->names_cap) {
    size_t cap = j->names_cap ? j->names_cap * 2 : 4096;
    while (cap < j->names_len + len + 1) cap *= 2;
    char *n = realloc(j->names, cap);
    if (!n) return ENOMEM;
    j->names = n;
    j->names_cap = cap;
  }
  if (j->names_len + len + 1 > UINT32_MAX) return EOVERFLOW;
  memcpy(j->names + j->names_len, name, len);
  j->names[j->names_len + len] = 0; /* NUL-terminated for fstatat */
  j->ents[j->count].off = (uint32_t)j->names_len;
  j->ents[j->count].len = (uint32_t)len;
  j->names_len += len + 1;
  j->count++;
  return 0;
}

static void execute(napi_env env, void *data) {
  (void)env;
  job_t *j = data;
  int fd = open(j->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    j->err = errno;
    return;
  }
  DIR *d = fdopendir(fd);
  if (!d) {
    j->err = errno;
    close(fd);
    return;
  }
  for (;;) {
    errno = 0;
    struct dirent *e = readdir(d);
    if (!e) {
      if (errno) j->err = errno;
      break;
    }
    const char *n = e->d_name;
    if (n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0))) continue;
    int r = add_name(j, n, strlen(n));
    if (r) {
      j->err = r;
      break;
    }
  }
  if (!j->err && j->count) {
    qsort_r(j->ents, j->count, sizeof(ent_t), cmp_ent_r, j->names);
    size_t len = j->count * FIELDS * sizeof(double) + j->count * sizeof(uint32_t);
    size_t names_total = 0;
    for (size_t i = 0; i < j->count; i++) names_total += j->ents[i].len;
    len += names_total;
    j->out = malloc(len);
    if (!j->out) j->err = ENOMEM;
    else {
      j->out_len = len;
      double *f = (double *)j->out;
      uint32_t *ends = (uint32_t *)(j->out + j->count * FIELDS * sizeof(double));
      uint8_t *nb = (uint8_t *)(ends + j->count);
      uint32_t end = 0;
      int dfd = dirfd(d);
      for (size_t i = 0; i < j->count; i++) {
        const char *name = j->names + j->ents[i].off;
        memcpy(nb + end, name, j->ents[i].len);
        end += j->ents[i].len;
        ends[i] = end;
        double *o = f + i * FIELDS;
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
          int e = errno;
          for (int k = 0; k < FIELDS - 1; k++) o[k] = 0;
          o[FIELDS - 1] = e ? e : EIO;
          continue;
        }
        o[0] = (double)(uint64_t)st.st_dev;
        o[1] = (double)(uint64_t)st.st_ino;
        o[2] = (double)st.st_mode;
        o[3] = (double)st.st_nlink;
        o[4] = (double)st.st_uid;
        o[5] = (double)st.st_gid;
        o[6] = (double)(uint64_t)st.st_rdev;
        o[7] = (double)st.st_size;
        o[8] = (double)st.st_blocks;
        o[9] = (double)st.st_mtim.tv_sec;
        o[10] = (double)st.st_mtim.tv_nsec;
        o[11] = (double)st.st_ctim.tv_sec;
        o[12] = (double)st.st_ctim.tv_nsec;
        o[13] = 0;
      }
    }
  }
  closedir(d);
}

static void job_free(napi_env env, job_t *j) {
  if (j->cb) napi_delete_reference(env, j->cb);
  if (j->work) napi_delete_async_work(env, j->work);
  free(j->path);
  free(j->names);
  free(j->ents);
  free(j->out);
  free(j);
}

static void complete(napi_env env, napi_status status, void *data) {
  job_t *j = data;
  napi_value cb, global, argv[3], r;
  if (status == napi_cancelled && !j->err) j->err = ECANCELED;
  napi_get_reference_value(env, j->cb, &cb);
  napi_get_global(env, &global);
  napi_create_int32(env, j->err, &argv[0]);
  napi_create_double(env, j->err ? 0 : (double)j->count, &argv[1]);
  int argc = 2;
  if (!j->err) {
    void *p;
    if (napi_create_buffer_copy(env, j->out_len, j->out_len ? (const void *)j->out : (const void *)"", &p, &argv[2]) == napi_ok) argc = 3;
    else {
      napi_create_int32(env, ENOMEM, &argv[0]);
    }
  }
  job_free(env, j);
  napi_call_function(env, global, cb, (size_t)argc, argv, &r);
}

static napi_value js_scan_dir(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  bool isbuf = false;
  napi_valuetype t;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 || napi_is_buffer(env, argv[0], &isbuf) != napi_ok || !isbuf ||
      napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, "scanDir(path: Buffer, cb: Function)");
    return NULL;
  }
  void *p;
  size_t len;
  napi_get_buffer_info(env, argv[0], &p, &len);
  if (len == 0 || memchr(p, 0, len)) {
    napi_throw_type_error(env, NULL, "scanDir: the path is empty or holds a NUL byte");
    return NULL;
  }
  job_t *j = calloc(1, sizeof(job_t));
  if (!j || !(j->path = malloc(len + 1))) {
    free(j);
    napi_throw_error(env, NULL, "scanDir: out of memory");
    return NULL;
  }
  memcpy(j->path, p, len);
  j->path[len] = 0;
  napi_value name;
  napi_create_string_utf8(env, "lifeboat.scanDir", NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, argv[1], 1, &j->cb) != napi_ok || napi_create_async_work(env, NULL, name, execute, complete, j, &j->work) != napi_ok ||
      napi_queue_async_work(env, j->work) != napi_ok) {
    job_free(env, j);
    napi_throw_error(env, NULL, "scanDir: could not queue the work");
    return NULL;
  }
  return NULL;
}

/*
 * xattrListSize(fd: number): number — the size flistxattr(2) gives for an open file: 0 when it has
 * no extended attributes, -errno on failure. The small-file workers skip the listing by path
 * (fs-xattr through /proc/self/fd) for the files that have none: most of them.
 */
static napi_value js_xattr_list_size(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], r;
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "xattrListSize(fd: number)");
    return NULL;
  }
  ssize_t n = flistxattr(fd, NULL, 0);
  napi_create_double(env, n < 0 ? -(double)errno : (double)n, &r);
  return r;
}

/*
 * lxattrListSize(path: Buffer): number — llistxattr(2) (a final symlink is not followed) of a path:
 * 0 when it has no extended attributes, -errno on failure. The walk skips opening directories
 * and special files to list their attributes when they have none.
 */
static napi_value js_lxattr_list_size(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], r;
  bool isbuf = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 || napi_is_buffer(env, argv[0], &isbuf) != napi_ok || !isbuf) {
    napi_throw_type_error(env, NULL, "lxattrListSize(path: Buffer)");
    return NULL;
  }
  void *p;
  size_t len;
  napi_get_buffer_info(env, argv[0], &p, &len);
  char stack[1024];
  char *path = len < sizeof stack ? stack : malloc(len + 1);
  if (!path || len == 0 || memchr(p, 0, len)) {
    if (path && path != stack) free(path);
    napi_create_double(env, -(double)EINVAL, &r);
    return r;
  }
  memcpy(path, p, len);
  path[len] = 0;
  ssize_t n = llistxattr(path, NULL, 0);
  int e = errno;
  if (path != stack) free(path);
  napi_create_double(env, n < 0 ? -(double)e : (double)n, &r);
  return r;
}

NAPI_MODULE_INIT() {
  napi_value f;
  napi_create_function(env, "scanDir", NAPI_AUTO_LENGTH, js_scan_dir, NULL, &f);
  napi_set_named_property(env, exports, "scanDir", f);
  napi_create_function(env, "xattrListSize", NAPI_AUTO_LENGTH, js_xattr_list_size, NULL, &f);
  napi_set_named_property(env, exports, "xattrListSize", f);
  napi_create_function(env, "lxattrListSize", NAPI_AUTO_LENGTH, js_lxattr_list_size, NULL, &f);
  napi_set_named_property(env, exports, "lxattrListSize", f);
  napi_value n;
  napi_create_int32(env, FIELDS, &n);
  napi_set_named_property(env, exports, "FIELDS", n);
  return exports;
}
