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
#include <string.h>
#include <sys/mman.h>

#define MEM_HDR 16
#define MEM_BIG ((size_t)64 << 10)

static void *mem_alloc(size_t n) {
  if (n > SIZE_MAX - MEM_HDR - 4096) return NULL;
  size_t t = n + MEM_HDR;
  uint8_t *p;
  if (t >= MEM_BIG) {
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
  if (t >= MEM_BIG) munmap(p, t);
  else free(p);
}

/* n rounded up to a whole number of MEM_BIG steps (a buffer regrown in steps, not a new mapping per size). */
static size_t mem_steps(size_t n) {
  return ((n ? n : 1) + (MEM_BIG - 1)) & ~(MEM_BIG - 1);
}
#endif
