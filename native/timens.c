/*
 * Nanosecond file times for the restorer: futimens(2) and utimensat(2).
 * Node's fs.utimes/futimes/lutimes pass times as doubles through libuv and
 * round to the microsecond; restic and tar restore the nanoseconds.
 *
 *   futimens(fd, atimeNs: bigint, mtimeNs: bigint): void
 *   lutimens(path: Buffer, atimeNs: bigint, mtimeNs: bigint): void   (does not follow a final symlink)
 *
 * Errors throw an Error with `code` set to the errno name (e.g. "ENOENT").
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static napi_value fail(napi_env env, int err, const char *what) {
  const char *name = "EIO";
  switch (err) {
    case ENOENT: name = "ENOENT"; break;
    case EACCES: name = "EACCES"; break;
    case EPERM: name = "EPERM"; break;
    case EROFS: name = "EROFS"; break;
    case EBADF: name = "EBADF"; break;
    case EINVAL: name = "EINVAL"; break;
    case ENOTDIR: name = "ENOTDIR"; break;
    case ELOOP: name = "ELOOP"; break;
    case ENAMETOOLONG: name = "ENAMETOOLONG"; break;
    case EOVERFLOW: name = "EOVERFLOW"; break;
  }
  napi_value code, msg, error;
  char text[256];
  snprintf(text, sizeof text, "%s: %s", what, strerror(err));
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_set_named_property(env, error, "code", code);
  napi_throw(env, error);
  return NULL;
}

/* A bigint of nanoseconds (may be negative) as a timespec with 0 <= tv_nsec < 1e9. */
static int to_timespec(napi_env env, napi_value v, struct timespec *ts) {
  int64_t ns;
  bool lossless;
  if (napi_get_value_bigint_int64(env, v, &ns, &lossless) != napi_ok || !lossless) return -1;
  int64_t sec = ns / 1000000000;
  int64_t rem = ns % 1000000000;
  if (rem < 0) {
    rem += 1000000000;
    sec -= 1;
  }
  ts->tv_sec = (time_t)sec;
  ts->tv_nsec = (long)rem;
  return 0;
}

static napi_value js_futimens(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  struct timespec ts[2];
  if (argc != 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || to_timespec(env, argv[1], &ts[0]) || to_timespec(env, argv[2], &ts[1])) {
    napi_throw_type_error(env, NULL, "futimens(fd, atimeNs: bigint, mtimeNs: bigint)");
    return NULL;
  }
  if (futimens(fd, ts) != 0) return fail(env, errno, "futimens");
  return NULL;
}

static napi_value js_lutimens(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *data;
  size_t len;
  struct timespec ts[2];
  bool isbuf = false;
  if (argc == 3) napi_is_buffer(env, argv[0], &isbuf);
  if (!isbuf || napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok || to_timespec(env, argv[1], &ts[0]) || to_timespec(env, argv[2], &ts[1])) {
    napi_throw_type_error(env, NULL, "lutimens(path: Buffer, atimeNs: bigint, mtimeNs: bigint)");
    return NULL;
  }
  if (len == 0 || len > 4096 || memchr(data, 0, len)) return fail(env, EINVAL, "lutimens");
  char *path = malloc(len + 1);
  if (!path) return fail(env, ENOMEM, "lutimens");
  memcpy(path, data, len);
  path[len] = 0;
  int rc = utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
  int err = errno;
  free(path);
  if (rc != 0) return fail(env, err, "lutimens");
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value f;
  napi_create_function(env, "futimens", NAPI_AUTO_LENGTH, js_futimens, NULL, &f);
  napi_set_named_property(env, exports, "futimens", f);
  napi_create_function(env, "lutimens", NAPI_AUTO_LENGTH, js_lutimens, NULL, &f);
  napi_set_named_property(env, exports, "lutimens", f);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
