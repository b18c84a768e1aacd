/* secmem: per-thread arenas of guarded memory. */
#include <pthread.h>
#include <sanitizer/asan_interface.h>
#include <sodium.h>
#include <stdint.h>
#include <string.h>

#include "keyfs/secmem.h"

#include "tap.h"

/* Reads a freed buffer on purpose: under AddressSanitizer the arena
 * hides it, so it is shown again first (a no-op elsewhere). */
static bool zero(const uint8_t *p, size_t n)
{
	size_t i;

	ASAN_UNPOISON_MEMORY_REGION(p, n);
	for (i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Buffers are aligned, distinct, usable; a freed one is wiped; once all
 * are back the arena starts over at the same place. */
static void test_arena(void)
{
	uint8_t *a, *b, *c, *again;

	a = secmem_alloc(16);
	b = secmem_alloc(100);
	c = secmem_alloc(0);
	tap_ok(a && b && c, "three buffers");
	tap_ok((uintptr_t)a % 16 == 0 && (uintptr_t)b % 16 == 0, "aligned to 16 bytes");
	tap_ok(b >= a + 16 && c >= b + 100, "in order, without overlap");
	memset(a, 0xa5, 16);
	memset(b, 0x5a, 100);
	secmem_free(b);
	tap_ok(zero(b, 100), "a freed buffer is wiped (still mapped: the arena is live)");
	tap_ok(a[0] == 0xa5 && a[15] == 0xa5, "the others keep their bytes");
	secmem_free(c);
	secmem_free(a);
	again = secmem_alloc(16);
	tap_ok(again == a, "with every buffer back, the arena starts over");
	secmem_free(again);
	secmem_free(NULL);
	tap_ok(true, "secmem_free(NULL) is fine");
}

/* Larger than the arena, or than what is left: sodium_malloc()'s own. */
static void test_fallback(void)
{
	uint8_t *big, *fill, *more;

	big = secmem_alloc(SECMEM_ARENA + 1);
	tap_ok(big != NULL, "a buffer larger than the arena");
	memset(big, 1, SECMEM_ARENA + 1);
	fill = secmem_alloc(SECMEM_ARENA - 64);
	more = secmem_alloc(4096);
	tap_ok(fill && more, "a full arena hands out guarded buffers of their own");
	memset(more, 2, 4096);
	secmem_free(more);
	secmem_free(fill);
	secmem_free(big);
	tap_ok(secmem_alloc((size_t)-1) == NULL, "an impossible size is NULL");
}

static void *take(void *arg)
{
	uint8_t **out = arg;

	out[0] = secmem_alloc(32);
	out[1] = secmem_alloc(32);
	memset(out[0], 7, 32);
	secmem_free(out[1]);
	return NULL; /* out[0] outlives its thread */
}

/* A buffer freed by another thread, after its own has ended. */
static void test_threads(void)
{
	uint8_t *bufs[2] = { NULL, NULL };
	pthread_t t;

	pthread_create(&t, NULL, take, bufs);
	pthread_join(t, NULL);
	tap_ok(bufs[0] && bufs[0][31] == 7, "a buffer outlives the thread that took it");
	secmem_free(bufs[0]); /* releases the orphaned arena (ASan checks) */
	tap_ok(true, "freed from another thread");
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	test_arena();
	test_fallback();
	test_threads();
	return tap_done();
}
