/*
 * glibc malloc's mmap threshold, set at run time (mallopt(3)).
 *
 *   mmapThreshold(bytes: number): boolean   M_MMAP_THRESHOLD; false where it cannot be set
 *                                           (not glibc, or out of glibc's range: at most 32 MiB)
 *   mmapped(): number                       bytes malloc holds in mmap'd chunks now (mallinfo2 hblkhd;
 *                                           -1 where unknown): for the tests
 *   trim(): boolean                         malloc_trim(0): the free memory of malloc's heaps given back to
 *                                           the kernel (true when some was); false where not glibc
 *   hugeBuffer(bytes: number): ArrayBuffer | undefined
 *                                           an ArrayBuffer of `bytes` (1 B .. 1 GiB) in a mapping of its own,
 *                                           2 MiB-aligned, whole 2 MiB pages, asked for transparent huge pages
 *                                           (madvise); unmapped when the buffer is freed (collected, or
 *                                           detached); undefined when it cannot be made
 *   hugeFree(ab: ArrayBuffer, keep?: boolean): boolean
 *                                           such a buffer detached and unmapped at once; false for any other.
 *                                           keep: its mapping is kept for the next hugeBuffer of the same
 *                                           number of 2 MiB pages instead (≤ HUGE_KEEP mappings, ≤ 8 MiB each;
 *                                           a reused buffer's bytes are what they were: not zeroed)
 *   trimEvery(ms: number): boolean          malloc_trim(0) every `ms` (10 .. 60000) milliseconds on a thread of
 *                                           its own ("lifeboat-trim"), started on the first call, the interval changed by later
 *                                           ones; 0 stops it (the thread ends at once). False where not glibc, a
 *                                           bad interval or no thread
 *   trimStats(): Float64Array               [trims run, the interval now (0: none)]
 *
 * Allocations of at least the threshold get a mapping of their own, returned to the kernel when
 * freed, instead of a place in the heap, which only shrinks from its top. Setting it also stops
 * glibc from raising the threshold by itself each time a large mapped block is freed (its default,
 * which lets later buffers of that size fill the heap). Used by the commands that move one
 * stream of data (src/util/malloc.ts). The daemon trims once no job runs (releaseIdleMemory).
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

/* A JavaScript boolean (the result of most of these calls). */
static napi_value js_bool(napi_env env, bool b) {
  napi_value r;
  napi_get_boolean(env, b, &r);
  return r;
}

/* The call's one argument as a number, into *x; false when there is not exactly one number. */
static bool one_number(napi_env env, napi_callback_info info, double *x) {
  size_t argc = 1;
  napi_value argv[1];
  return napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == 1 && napi_get_value_double(env, argv[0], x) == napi_ok;
}

static napi_value js_mmap_threshold(napi_env env, napi_callback_info info) {
  double bytes = -1;
  bool ok = false;
  if (one_number(env, info, &bytes)) {
#ifdef __GLIBC__
    if (bytes >= 0 && bytes <= 32.0 * 1024 * 1024) ok = mallopt(M_MMAP_THRESHOLD, (int)bytes) == 1;
#endif
  }
  return js_bool(env, ok);
}

static napi_value js_mmapped(napi_env env, napi_callback_info info) {
  double n = -1;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  struct mallinfo2 mi = mallinfo2();
  n = (double)mi.hblkhd;
#endif
  napi_value r;
  napi_create_double(env, n, &r);
  return r;
}

static napi_value js_trim(napi_env env, napi_callback_info info) {
  (void)info;
  bool released = false;
#ifdef __GLIBC__
  released = malloc_trim(0) == 1;
#endif
  return js_bool(env, released);
}

/*
 * The heap trimmed while a command works (src/util/malloc.ts heapTrim). Every buffer under the mmap
 * threshold (all of the pool's small blocks with one malloc arena; Node's Buffers below it) comes from
 * the heap, which glibc gives back only from its top: the free pages below a block still in use stay
 * resident, and the heap's high-water mark, reached at a random moment, became part of the peak RSS.
 * malloc_trim(0) hands every free page back wherever it is. A thread of its own, not a timer of the
 * event loop: the trims never wait for the main thread, nor the main thread for them (they hold the
 * arena's lock for the time the walk over its free blocks takes).
 */
static pthread_once_t tr_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t tr_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tr_cond;
static bool tr_cond_ok;
static uint32_t tr_ms;    /* the interval; 0: stop */
static uint64_t tr_gen;   /* changed by every trimEvery call: the wait starts again with its interval */
static bool tr_thread;    /* the thread is running */
static uint64_t tr_runs;

static void tr_init(void) {
  pthread_condattr_t a;
  if (pthread_condattr_init(&a) != 0) return;
  /* waits measured on the monotonic clock: a change of the wall clock neither stops nor floods the trims */
  tr_cond_ok = pthread_condattr_setclock(&a, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&tr_cond, &a) == 0;
  pthread_condattr_destroy(&a);
}

static void *tr_loop(void *arg) {
  (void)arg;
  pthread_mutex_lock(&tr_lock);
  while (tr_ms > 0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += tr_ms / 1000;
    t.tv_nsec += (long)(tr_ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
      t.tv_sec++;
      t.tv_nsec -= 1000000000L;
    }
    int e = 0;
    uint64_t gen = tr_gen;
    /* until the deadline, or a new interval (then measured from now), or the stop */
    while (tr_ms > 0 && tr_gen == gen && e != ETIMEDOUT) e = pthread_cond_timedwait(&tr_cond, &tr_lock, &t);
    if (tr_ms == 0) break;
    if (tr_gen != gen) continue;
    pthread_mutex_unlock(&tr_lock);
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    pthread_mutex_lock(&tr_lock);
    tr_runs++;
  }
  tr_thread = false;
  pthread_mutex_unlock(&tr_lock);
  return NULL;
}

static napi_value js_trim_every(napi_env env, napi_callback_info info) {
  double ms = -1;
  bool ok = false;
#ifdef __GLIBC__
  if (one_number(env, info, &ms) && (ms == 0 || (ms >= 10 && ms <= 60000 && ms == (double)(uint32_t)ms)) && pthread_once(&tr_once, tr_init) == 0 && tr_cond_ok) {
    pthread_mutex_lock(&tr_lock);
    tr_ms = (uint32_t)ms;
    tr_gen++;
    if (tr_thread || tr_ms == 0) {
      pthread_cond_signal(&tr_cond); /* a new interval from now, or the stop */
      ok = true;
    } else {
      pthread_attr_t a;
      pthread_t t;
      sigset_t all, old;
      if (pthread_attr_init(&a) == 0) {
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&a, 64 * 1024);
        /* no signal is delivered to this thread: Node's handlers run where Node expects them */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        ok = pthread_create(&t, &a, tr_loop, NULL) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        /* named before the call returns: the process's threads show the trims run (/proc/PID/task/TID/comm) */
        if (ok) pthread_setname_np(t, "lifeboat-trim");
        pthread_attr_destroy(&a);
      }
      tr_thread = ok;
      if (!ok) tr_ms = 0;
    }
    pthread_mutex_unlock(&tr_lock);
  }
#else
  (void)info;
#endif
  return js_bool(env, ok);
}

static napi_value js_trim_stats(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value ab, arr;
  double *d = NULL;
  if (napi_create_arraybuffer(env, 2 * sizeof(double), (void **)&d, &ab) != napi_ok || !d) return NULL;
  pthread_mutex_lock(&tr_lock);
  d[0] = (double)tr_runs;
  d[1] = (double)tr_ms;
  pthread_mutex_unlock(&tr_lock);
  if (napi_create_typedarray(env, napi_float64_array, 2, ab, 0, &arr) != napi_ok) return NULL;
  return arr;
}

/*
 * Large buffers in huge pages (src/util/huge-buffer.ts). A buffer of a few MiB from malloc is a mapping
 * of its own (above the mmap threshold) that the kernel fills in 4 KiB at a time, one page fault per
 * page on first touch: ~12 us each on these virtual machines (a 1.5 MiB buffer: 384 faults, 4.5 ms; a
 * 2 MiB huge page: one fault, 0.1 ms). glibc's mapping is its size plus a header, never 2 MiB-aligned
 * whole pages, so it gets no huge pages. Here: 2 MiB more is mapped, the aligned part kept.
 */
#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_MAX ((size_t)1 << 30)

/* A huge buffer's mapping; `freed` once hugeFree unmapped it (its ArrayBuffer is detached, and collected later). */
typedef struct {
  void *map;
  size_t len;
  int freed;
} huge_map;

/*
 * Mappings hugeFree(ab, true) kept, reused by the next hugeBuffer of the same length: a new mapping is
 * a page fault and 2 MiB of zeroing by the kernel per huge page (a files restore's loose loads and
 * reads made ~730: 1.5 GB zeroed). Under a lock: worker threads load this addon too.
 */
#define HUGE_KEEP 4
#define HUGE_KEEP_MAX ((size_t)8 << 20)
static struct {
  void *map;
  size_t len;
} huge_kept[HUGE_KEEP];
static int huge_kept_n = 0;
static pthread_mutex_t huge_kept_lock = PTHREAD_MUTEX_INITIALIZER;

/* A kept mapping of `len` bytes, or NULL. */
static void *huge_take(size_t len) {
  void *p = NULL;
  pthread_mutex_lock(&huge_kept_lock);
  for (int i = 0; i < huge_kept_n; i++) {
    if (huge_kept[i].len != len) continue;
    p = huge_kept[i].map;
    huge_kept[i] = huge_kept[--huge_kept_n];
    break;
  }
  pthread_mutex_unlock(&huge_kept_lock);
  return p;
}

/* Keep a mapping for reuse; false when there is no room (the caller unmaps it). */
static bool huge_keep(void *map, size_t len) {
  bool kept = false;
  pthread_mutex_lock(&huge_kept_lock);
  if (len <= HUGE_KEEP_MAX && huge_kept_n < HUGE_KEEP) {
    huge_kept[huge_kept_n].map = map;
    huge_kept[huge_kept_n].len = len;
    huge_kept_n++;
    kept = true;
  }
  pthread_mutex_unlock(&huge_kept_lock);
  return kept;
}

static void huge_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  huge_map *h = hint;
  if (!h->freed) munmap(h->map, h->len);
  free(h);
}

static napi_value js_huge_buffer(napi_env env, napi_callback_info info) {
  double bytes = -1;
  napi_value r;
  napi_get_undefined(env, &r);
  if (!one_number(env, info, &bytes)) return r;
  if (!(bytes >= 1 && bytes <= (double)HUGE_MAX) || bytes != (double)(size_t)bytes) return r;
  size_t n = (size_t)bytes;
  size_t len = (n + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  huge_map *h = malloc(sizeof *h);
  if (!h) return r;
  /* a kept mapping of this length (already aligned and advised), else a new one */
  uint8_t *p = huge_take(len);
  if (!p) {
    uint8_t *m = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      free(h);
      return r;
    }
    p = (uint8_t *)(((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (p > m) munmap(m, (size_t)(p - m));
    if (m + len + HUGE_PAGE > p + len) munmap(p + len, (size_t)(m + len + HUGE_PAGE - (p + len)));
#ifdef MADV_HUGEPAGE
    madvise(p, len, MADV_HUGEPAGE);
#endif
  }
  h->map = p;
  h->len = len;
  h->freed = 0;
  if (napi_create_external_arraybuffer(env, p, n, huge_finalize, h, &r) != napi_ok) {
    munmap(p, len);
    free(h);
    napi_get_undefined(env, &r);
    return r;
  }
  /* the record, for hugeFree (no finalizer of its own: huge_finalize frees it) */
  napi_wrap(env, r, h, NULL, NULL, NULL);
  return r;
}

/*
 * hugeFree(ab): a buffer hugeBuffer made, detached and unmapped now (not at its collection); true
 * when it was one (its record is wrapped in the ArrayBuffer object), false for any other buffer.
 */
static napi_value js_huge_free(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *data = NULL;
  size_t n = 0;
  huge_map *h = NULL;
  bool ok = false;
  bool keep = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return js_bool(env, false);
  if (argc >= 2 && napi_get_value_bool(env, argv[1], &keep) != napi_ok) keep = false;
  if (argc >= 1 && napi_unwrap(env, argv[0], (void **)&h) == napi_ok && h &&
      napi_get_arraybuffer_info(env, argv[0], &data, &n) == napi_ok && data == h->map && !h->freed) {
    /* marked first and `h` not touched after the detach: should the finalizer run within it, it frees only `h` */
    void *map = h->map;
    size_t len = h->len;
    h->freed = 1;
    if (napi_detach_arraybuffer(env, argv[0]) == napi_ok) {
      if (!keep || !huge_keep(map, len)) munmap(map, len);
      ok = true;
    } else {
      h->freed = 0;
    }
  }
  return js_bool(env, ok);
}

/*
 * dropExecutableText(): the node executable's read-only pages unmapped from this process
 * (madvise MADV_DONTNEED), to be mapped again from the page cache where they are still used
 * (src/util/startup-text.ts). Only the pages wholly inside a loadable segment of the executable
 * that cannot be written (its program headers, through dl_iterate_phdr): the loader never writes
 * them (its relocations go to the writable segment, whose read-only-after-relocation part, RELRO,
 * is in that segment), so they hold exactly the file's bytes and nothing is lost; nothing at all
 * for an executable with text relocations. Returns the kB of address range given back; -1 where
 * it cannot be done (not Linux with glibc's dl_iterate_phdr).
 */
#if defined(__linux__) && defined(__GLIBC__)
#include <elf.h>
#include <link.h>
#include <unistd.h>

typedef struct {
  double kB;
} drop_state;

static int drop_segments(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  drop_state *st = data;
  /* the first object is the executable itself; every return below is non-zero, which ends the iteration after it */
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_DYNAMIC) continue;
    /* text relocations: the loader wrote into read-only segments */
    for (const ElfW(Dyn) *d = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr); d->d_tag != DT_NULL; d++)
      if (d->d_tag == DT_TEXTREL || (d->d_tag == DT_FLAGS && (d->d_un.d_val & DF_TEXTREL))) return 1;
  }
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W) || ph->p_memsz == 0) continue;
    /* whole pages inside the segment only: a page shared with a neighbour is left */
    uintptr_t lo = (info->dlpi_addr + ph->p_vaddr + page - 1) & ~(page - 1);
    uintptr_t hi = (info->dlpi_addr + ph->p_vaddr + ph->p_filesz) & ~(page - 1);
    if (hi > lo && madvise((void *)lo, hi - lo, MADV_DONTNEED) == 0) st->kB += (double)((hi - lo) >> 10);
  }
  return 1;
}
#endif

static napi_value js_drop_executable_text(napi_env env, napi_callback_info info) {
  (void)info;
  double dropped = -1;
#if defined(__linux__) && defined(__GLIBC__)
  drop_state st = {0};
  dl_iterate_phdr(drop_segments, &st);
  dropped = st.kB;
#endif
  napi_value r;
  napi_create_double(env, dropped, &r);
  return r;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value f;
  napi_create_function(env, "mmapThreshold", NAPI_AUTO_LENGTH, js_mmap_threshold, NULL, &f);
  napi_set_named_property(env, exports, "mmapThreshold", f);
  napi_create_function(env, "mmapped", NAPI_AUTO_LENGTH, js_mmapped, NULL, &f);
  napi_set_named_property(env, exports, "mmapped", f);
  napi_create_function(env, "trim", NAPI_AUTO_LENGTH, js_trim, NULL, &f);
  napi_set_named_property(env, exports, "trim", f);
  napi_create_function(env, "trimEvery", NAPI_AUTO_LENGTH, js_trim_every, NULL, &f);
  napi_set_named_property(env, exports, "trimEvery", f);
  napi_create_function(env, "trimStats", NAPI_AUTO_LENGTH, js_trim_stats, NULL, &f);
  napi_set_named_property(env, exports, "trimStats", f);
  napi_create_function(env, "hugeBuffer", NAPI_AUTO_LENGTH, js_huge_buffer, NULL, &f);
  napi_set_named_property(env, exports, "hugeBuffer", f);
  napi_create_function(env, "hugeFree", NAPI_AUTO_LENGTH, js_huge_free, NULL, &f);
  napi_set_named_property(env, exports, "hugeFree", f);
  napi_create_function(env, "dropExecutableText", NAPI_AUTO_LENGTH, js_drop_executable_text, NULL, &f);
  napi_set_named_property(env, exports, "dropExecutableText", f);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
