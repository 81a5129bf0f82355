/*
 * Memory of the libuv pool threads, shared by codec.c (the read path) and encode.c (the write
 * path): blocks from MEM_BIG (64 KiB) are mapped and unmapped directly, smaller ones malloc'd,
 * each behind a MEM_HDR-byte header holding its total size (which says which). Through malloc, the
 * large blocks freed on these threads stayed in their arenas (glibc raises its mmap threshold to
 * the size of a mapped block freed, and then serves that size from the thread's arena): check
 * --read-data peaked ~17 MB higher than with MALLOC_ARENA_MAX=1.
 */
#ifndef LIFEBOAT_MEM_CORE_H
#define LIFEBOAT_MEM_CORE_H
#include <stdint.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define MEM_HDR 16
#define MEM_BIG ((size_t)64 << 10)

/*
 * Under AddressSanitizer (native/asan.sh) every block goes through malloc: a mapped block is out of
 * ASAN's sight (no red zone after it, no quarantine once unmapped), so a read past its end or after
 * its unmapping would go unreported, or end in a bare SIGSEGV.
 */
#if defined(__SANITIZE_ADDRESS__)
#define MEM_MAP 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_MAP 0
#endif
#endif
#ifndef MEM_MAP
#define MEM_MAP 1
#endif

static void *mem_alloc(size_t n) {
  if (n > SIZE_MAX - MEM_HDR - 4096) return NULL;
  size_t t = n + MEM_HDR;
  uint8_t *p;
  if (MEM_MAP && t >= MEM_BIG) {
    p = mmap(NULL, t, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
  } else {
    p = malloc(t);
    if (!p) return NULL;
  }
  memcpy(p, &t, sizeof t);
  return p + MEM_HDR;
}

static void mem_free(void *q) {
  if (!q) return;
  uint8_t *p = (uint8_t *)q - MEM_HDR;
  size_t t;
  memcpy(&t, p, sizeof t);
  if (MEM_MAP && t >= MEM_BIG) munmap(p, t);
  else free(p);
}

/*
 * A few freed blocks kept for the next one that fits (codec.c: decode buffers over KEEP; encode.c:
 * sealed outputs), each with the size its owner measures it by: at most `slots` blocks and `max`
 * size in all. A block that does not fit replaces the smallest one kept if it is larger.
 */
#define MEM_SPARE_SLOTS 8
typedef struct {
  pthread_mutex_t lock;
  int slots;  /* blocks kept at most (<= MEM_SPARE_SLOTS) */
  size_t max; /* their sizes, in all, at most */
  size_t bytes;
  struct {
    void *p;
    size_t size;
    uint64_t at; /* when it was kept (the caller's clock, mem_spare_age) */
  } b[MEM_SPARE_SLOTS];
} mem_spares;
#define MEM_SPARES(slots, max) {PTHREAD_MUTEX_INITIALIZER, (slots), (max), 0, {{NULL, 0, 0}}}

/* The smallest kept block of at least `want` (its size into *size), taken out; NULL if none. */
static void *mem_spare_take(mem_spares *s, size_t want, size_t *size) {
  void *p = NULL;
  pthread_mutex_lock(&s->lock);
  int best = -1;
  for (int k = 0; k < s->slots; k++)
    if (s->b[k].p && s->b[k].size >= want && (best < 0 || s->b[k].size < s->b[best].size)) best = k;
  if (best >= 0) {
    p = s->b[best].p;
    *size = s->b[best].size;
    s->bytes -= *size;
    s->b[best].p = NULL;
    s->b[best].size = 0;
  }
  pthread_mutex_unlock(&s->lock);
  return p;
}

/* A monotonic clock in milliseconds (when a spare was kept: mem_spare_age). */
static inline uint64_t mem_now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Keeps block p of `size` if there is room (a smaller kept block making way); returns what the caller must free: p, the block it replaced, or NULL. */
static void *mem_spare_keep(mem_spares *s, void *p, size_t size) {
  pthread_mutex_lock(&s->lock);
  int slot = -1, small = -1;
  for (int k = 0; k < s->slots; k++) {
    if (!s->b[k].p) slot = k;
    else if (small < 0 || s->b[k].size < s->b[small].size) small = k;
  }
  if (slot >= 0 && s->bytes + size <= s->max) {
    s->b[slot].p = p;
    s->b[slot].size = size;
    s->b[slot].at = mem_now_ms();
    s->bytes += size;
    p = NULL;
  } else if (small >= 0 && s->b[small].size < size && s->bytes - s->b[small].size + size <= s->max) {
    void *q = s->b[small].p;
    s->bytes += size - s->b[small].size;
    s->b[small].p = p;
    s->b[small].size = size;
    s->b[small].at = mem_now_ms();
    p = q;
  }
  pthread_mutex_unlock(&s->lock);
  return p;
}

/*
 * The kept blocks not taken within `ms` of being kept, freed (returned: their bytes). A spare is
 * kept for the next job that needs a buffer that large; where none came for a while the work has
 * moved on, and the block was only resident memory (codec.c: a backup's few chunks over 2 MiB).
 */
static inline size_t mem_spare_age(mem_spares *s, uint64_t now, uint64_t ms) {
  void *old[MEM_SPARE_SLOTS];
  int n = 0;
  size_t bytes = 0;
  pthread_mutex_lock(&s->lock);
  for (int k = 0; k < s->slots; k++) {
    if (!s->b[k].p || s->b[k].at > now || now - s->b[k].at < ms) continue; /* (kept by another thread since `now`) */
    old[n++] = s->b[k].p;
    bytes += s->b[k].size;
    s->bytes -= s->b[k].size;
    s->b[k].p = NULL;
    s->b[k].size = 0;
  }
  pthread_mutex_unlock(&s->lock);
  for (int k = 0; k < n; k++) mem_free(old[k]);
  return bytes;
}

/* n rounded up to a whole number of MEM_BIG steps (a buffer regrown in steps, not a new mapping per size). */
static size_t mem_steps(size_t n) {
  return ((n ? n : 1) + (MEM_BIG - 1)) & ~(MEM_BIG - 1);
}
#endif
