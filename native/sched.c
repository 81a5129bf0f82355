/*
 * Scheduling of libuv's thread pool (the threads that run the codec's decode and encode jobs,
 * the chunk hashes, the restore's file batches and node's own fs calls).
 *
 *   tunePool(threads: number, nice: number, batch: boolean, waitMs: number): Promise<number>
 *     `threads` work items, each of which, on the pool thread that runs it, raises that thread's
 *     nice value by `nice` (at most to 19; setpriority(PRIO_PROCESS, tid): per thread on Linux) and, with `batch`, its
 *     policy to SCHED_BATCH (sched_setscheduler(tid)), then waits until all `threads` items have
 *     started, or `waitMs` have passed: while all wait, no thread can take a second item, so on a
 *     pool of `threads` idle threads each item lands on a thread of its own. Resolves to the
 *     number of distinct threads that took the setting (the main thread, which runs JavaScript,
 *     and the threads V8 and node start are untouched). Raising one's own nice value and
 *     switching to SCHED_BATCH need no privilege.
 *
 * Why: with as many pool threads as cores (bin/lifeboat sizes the pool so on 2-3 cores), the
 * main thread shares the cores with pool threads that are busy decoding or encoding. Each job it
 * queues wakes a pool thread, which then took the main thread's core: the main thread, which
 * plans and feeds every job, waited its turn (src/util/pool-priority.ts; docs/benchmarks.md).
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 1024

typedef struct group group_t;

typedef struct {
  napi_async_work work;
  group_t *g;
  pid_t tid;
  bool ok;
} item_t;

struct group {
  napi_deferred deferred;
  int n;
  int nice;
  bool batch;
  int wait_ms;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int arrived;
  int done;
  item_t items[];
};

static void execute(napi_env env, void *data) {
  (void)env;
  item_t *it = data;
  group_t *g = it->g;
  it->tid = (pid_t)syscall(SYS_gettid);
  /* an increment, as nice(2): a command started under `nice` keeps the gap it was given */
  errno = 0;
  int cur = getpriority(PRIO_PROCESS, (id_t)it->tid);
  if (cur == -1 && errno != 0) cur = 0;
  int to = cur + g->nice > 19 ? 19 : cur + g->nice;
  bool ok = setpriority(PRIO_PROCESS, (id_t)it->tid, to) == 0;
#ifdef SCHED_BATCH
  if (ok && g->batch) {
    struct sched_param sp = {0};
    ok = sched_setscheduler(it->tid, SCHED_BATCH, &sp) == 0;
  }
#endif
  it->ok = ok;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += g->wait_ms / 1000;
  until.tv_nsec += (long)(g->wait_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&g->mu);
  g->arrived++;
  pthread_cond_broadcast(&g->cv);
  while (g->arrived < g->n)
    if (pthread_cond_timedwait(&g->cv, &g->mu, &until) == ETIMEDOUT) break;
  pthread_mutex_unlock(&g->mu);
}

/* Once every item queued has completed (or none was): resolve with the number of distinct threads that took the setting, and free the group. */
static void settle(napi_env env, group_t *g) {
  int distinct = 0;
  for (int i = 0; i < g->n; i++) {
    if (!g->items[i].ok) continue;
    bool seen = false;
    for (int k = 0; k < i && !seen; k++) seen = g->items[k].ok && g->items[k].tid == g->items[i].tid;
    if (!seen) distinct++;
  }
  napi_value r;
  napi_create_int32(env, distinct, &r);
  napi_resolve_deferred(env, g->deferred, r);
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
  free(g);
}

static void complete(napi_env env, napi_status st, void *data) {
  (void)st;
  item_t *it = data;
  group_t *g = it->g;
  napi_delete_async_work(env, it->work);
  if (++g->done == g->n) settle(env, g); /* a cancelled item never ran: not ok, not counted */
}

static napi_value js_tune_pool(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int32_t n = 0, nice = 0, wait_ms = 0;
  bool batch = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 4 || napi_get_value_int32(env, argv[0], &n) != napi_ok ||
      napi_get_value_int32(env, argv[1], &nice) != napi_ok || napi_get_value_bool(env, argv[2], &batch) != napi_ok ||
      napi_get_value_int32(env, argv[3], &wait_ms) != napi_ok || n < 1 || n > MAX_THREADS || nice < 0 || nice > 19 || wait_ms < 0 ||
      wait_ms > 10000) {
    napi_throw_type_error(env, NULL, "tunePool(threads: 1..1024, nice: 0..19, batch: boolean, waitMs: 0..10000)");
    return NULL;
  }
  group_t *g = calloc(1, sizeof *g + (size_t)n * sizeof(item_t));
  if (!g) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  napi_value promise, name;
  if (napi_create_promise(env, &g->deferred, &promise) != napi_ok) {
    free(g);
    napi_throw_error(env, NULL, "tunePool: no promise");
    return NULL;
  }
  g->n = n;
  g->nice = nice;
  g->batch = batch;
  g->wait_ms = wait_ms;
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  napi_create_string_utf8(env, "lifeboat:tunePool", NAPI_AUTO_LENGTH, &name);
  int queued = 0;
  for (int i = 0; i < n; i++) {
    item_t *it = &g->items[i];
    it->g = g;
    if (napi_create_async_work(env, NULL, name, execute, complete, it, &it->work) != napi_ok) break;
    if (napi_queue_async_work(env, it->work) != napi_ok) {
      napi_delete_async_work(env, it->work);
      break;
    }
    queued++;
  }
  if (queued < n) {
    /* the items that did queue still run and wait at most waitMs; the promise settles with them */
    pthread_mutex_lock(&g->mu);
    g->n = queued;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (queued == 0) settle(env, g);
  }
  return promise;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "tunePool", NAPI_AUTO_LENGTH, js_tune_pool, NULL, &fn);
  napi_set_named_property(env, exports, "tunePool", fn);
  return exports;
}
