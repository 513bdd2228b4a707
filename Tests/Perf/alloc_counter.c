/* LD_PRELOAD allocation counter for the allocation regression check (Tests/Perf).
 * Counts malloc/calloc/realloc/posix_memalign/aligned_alloc calls of the process it is preloaded into and
 * writes the total to $ALLOC_COUNT_FILE at exit. Not thread-aware on purpose: the gateway is one thread. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long long count;
static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static int (*real_memalign)(void **, size_t, size_t);
static void *(*real_aligned)(size_t, size_t);
static char bootstrap[4096];
static size_t bootstrap_used;

static void init(void) {
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned = dlsym(RTLD_NEXT, "aligned_alloc");
}

void *malloc(size_t n) { if (!real_malloc) init(); count++; return real_malloc(n); }
void *calloc(size_t a, size_t b) {
    if (!real_calloc) {
        /* dlsym itself may calloc before we know the real one. */
        size_t need = a * b; void *p = bootstrap + bootstrap_used; bootstrap_used += (need + 15) & ~15UL;
        memset(p, 0, need); return p;
    }
    count++; return real_calloc(a, b);
}
void *realloc(void *p, size_t n) { if (!real_realloc) init(); count++; return real_realloc(p, n); }
int posix_memalign(void **p, size_t a, size_t n) { if (!real_memalign) init(); count++; return real_memalign(p, a, n); }
void *aligned_alloc(size_t a, size_t n) { if (!real_aligned) init(); count++; return real_aligned(a, n); }
void free(void *p) {
    static void (*real_free)(void *);
    if ((char *)p >= bootstrap && (char *)p < bootstrap + sizeof bootstrap) return;
    if (!real_free) real_free = dlsym(RTLD_NEXT, "free");
    real_free(p);
}

__attribute__((destructor)) static void report(void) {
    const char *path = getenv("ALLOC_COUNT_FILE");
    if (!path) return;
    FILE *f = fopen(path, "w");
    if (f) { fprintf(f, "%llu\n", count); fclose(f); }
}
