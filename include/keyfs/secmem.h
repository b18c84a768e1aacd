/* Guarded memory for short-lived secrets (file keys, HKDF and MAC
 * scratch, key files being sealed) without a mapping of their own.
 *
 * sodium_malloc() maps, locks and guards pages for every buffer: six
 * system calls and, with several threads, TLB shootdowns on every core.
 * A seal to public keys needs a dozen such buffers and little else, so
 * they would cost it more than all its crypto. Each thread therefore
 * takes its secrets from an arena of its own, one sodium_malloc() region
 * (guard pages, mlocked, never swapped), handed out in order and wiped
 * on every secmem_free(); the arena is reused once all its buffers are
 * back. A buffer larger than what is left comes from sodium_malloc()
 * itself. Any thread may free any buffer.
 *
 * Never mix the two: a buffer from secmem_alloc() goes back through
 * secmem_free(), one from sodium_malloc() through sodium_free(). */
#ifndef KEYFS_SECMEM_H
#define KEYFS_SECMEM_H

#include <stddef.h>

#define SECMEM_ARENA (256 * 1024)

/* Like sodium_malloc(): n bytes (n may be 0), aligned for any type,
 * filled with garbage; NULL if out of memory. */
void *secmem_alloc(size_t n);
/* Wipes and releases p; NULL is fine. */
void secmem_free(void *p);

#endif
