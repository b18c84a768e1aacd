/* Per-thread arenas of guarded memory for short-lived secrets (see
 * secmem.h). */
#include <pthread.h>
#include <sanitizer/asan_interface.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "keyfs/secmem.h"

struct arena {
	pthread_mutex_t lock;
	size_t top;		/* bytes handed out from the start of mem */
	size_t live;		/* buffers not freed yet */
	bool orphan;		/* its thread ended: the last free releases it */
	uint8_t *mem;		/* SECMEM_ARENA bytes of sodium_malloc() memory */
};

/* Before every buffer; 16 bytes keep the buffer aligned like malloc's. */
struct block {
	struct arena *a;	/* NULL: the buffer is sodium_malloc()'s own */
	size_t size;
};

#define ALIGN 16
#define HDR ((sizeof(struct block) + ALIGN - 1) & ~(size_t)(ALIGN - 1))

/* Under AddressSanitizer only a buffer handed out is addressable, so a
 * read or write past its end stops there as it would past malloc()'s,
 * rather than landing unseen in the arena. Elsewhere these do nothing. */
#define hide(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define show(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)

static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void arena_release(struct arena *a)
{
	pthread_mutex_destroy(&a->lock);
	show(a->mem, SECMEM_ARENA);
	sodium_free(a->mem);
	sodium_free(a);
}

/* The thread ends: its arena goes now, or with its last buffer. */
static void thread_done(void *p)
{
	struct arena *a = p;
	bool now;

	pthread_mutex_lock(&a->lock);
	a->orphan = true;
	now = !a->live;
	pthread_mutex_unlock(&a->lock);
	if (now)
		arena_release(a);
}

static void make_key(void)
{
	(void)pthread_key_create(&key, thread_done);
}

static struct arena *my_arena(void)
{
	struct arena *a;

	pthread_once(&once, make_key);
	a = pthread_getspecific(key);
	if (a)
		return a;
	a = sodium_malloc(sizeof(*a));
	if (!a)
		return NULL;
	memset(a, 0, sizeof(*a));
	a->mem = sodium_malloc(SECMEM_ARENA);
	if (!a->mem || pthread_setspecific(key, a)) {
		sodium_free(a->mem);
		sodium_free(a);
		return NULL;
	}
	hide(a->mem, SECMEM_ARENA);
	pthread_mutex_init(&a->lock, NULL);
	return a;
}

/* Room for n bytes in a, or NULL. */
static struct block *carve(struct arena *a, size_t n)
{
	size_t need = HDR + ((n + ALIGN - 1) & ~(size_t)(ALIGN - 1));
	struct block *b = NULL;

	pthread_mutex_lock(&a->lock);
	if (need >= n && need <= SECMEM_ARENA - a->top) {
		b = (struct block *)(a->mem + a->top);
		a->top += need;
		a->live++;
	}
	pthread_mutex_unlock(&a->lock);
	if (b) {
		show(b, HDR + n);
		*b = (struct block){ a, n };
		hide(b, HDR);
	}
	return b;
}

void *secmem_alloc(size_t n)
{
	struct arena *a = n <= SECMEM_ARENA ? my_arena() : NULL;
	struct block *b = a ? carve(a, n) : NULL;

	if (!b) {
		if (n > SIZE_MAX - HDR - 16)
			return NULL;
		/* sodium_malloc() ends the block at a guard page: a size
		 * rounded to the header's alignment keeps the header aligned */
		b = sodium_malloc((HDR + n + _Alignof(struct block) - 1) &
				  ~(_Alignof(struct block) - 1));
		if (!b)
			return NULL;
		*b = (struct block){ NULL, n };
	}
	return (uint8_t *)b + HDR;
}

void secmem_free(void *p)
{
	struct block *b;
	struct arena *a;
	bool gone;

	if (!p)
		return;
	b = (struct block *)((uint8_t *)p - HDR);
	show(b, HDR);
	a = b->a;
	if (!a) {
		sodium_free(b); /* wipes it all */
		return;
	}
	sodium_memzero(p, b->size);
	hide(b, HDR + b->size);
	pthread_mutex_lock(&a->lock);
	if (!--a->live)
		a->top = 0; /* every buffer is back: start over */
	gone = !a->live && a->orphan;
	pthread_mutex_unlock(&a->lock);
	if (gone)
		arena_release(a);
}
