/* age v1 files with one scrypt passphrase stanza (C2SP age spec).
 *
 * Everything works on whole buffers: keysets are small and bounded by the
 * import limits, and a buffer API keeps the parsers fuzzable.
 *
 * Errors, as negative errno:
 *   -EINVAL        not an age v1 file, malformed header or stanza
 *   -EKEYREJECTED  no passphrase opens the stanza, or logN above AGE_LOGN_MAX
 *   -EBADMSG       header MAC or payload authentication failed, truncated
 *   -ENOMEM        allocation failed
 *   -EFBIG         plaintext too large to seal (beyond SIZE_MAX / 2)
 *
 * Callers must have called sodium_init() (sodium_malloc() needs it).
 */
#ifndef KEYFS_AGE_H
#define KEYFS_AGE_H

#include <stddef.h>
#include <stdint.h>

#define AGE_FILE_KEY_LEN 16
#define AGE_SALT_LEN 16
#define AGE_NONCE_LEN 16
#define AGE_CHUNK_LEN 65536
#define AGE_TAG_LEN 16
#define AGE_LOGN_MIN 10 /* lowest work factor keyfs seals with */
#define AGE_LOGN_MAX 22 /* age's own cap; refused on read before any work */
#define AGE_LOGN_DEFAULT 18

struct age_pass {
	const char *p; /* not NUL-terminated; lives in guarded memory */
	size_t len;
};

/* Exact size of the binary file age_seal() writes for len plaintext bytes
 * at work factor logn. */
size_t age_sealed_size(size_t len, int logn);

/* Seal pt under pass with scrypt work factor logn (AGE_LOGN_MIN..AGE_LOGN_MAX).
 * Fresh random salt, file key and nonce on every call. *out is malloc()ed
 * (ciphertext is not secret) and exactly age_sealed_size(len, logn) long. */
int age_seal(const uint8_t *pt, size_t len, const struct age_pass *pass,
	     int logn, uint8_t **out, size_t *outlen);

/* Open a binary age file with the first of npass passphrases that fits.
 * *pt is sodium_malloc()ed (it holds key material): release it with
 * sodium_free(). *which, if not NULL, receives the index of the passphrase
 * that opened it. */
int age_unseal(const uint8_t *in, size_t len, const struct age_pass *pass,
	       size_t npass, uint8_t **pt, size_t *ptlen, size_t *which);

/* Read the scrypt work factor of a binary age file without any key work.
 * Returns logN or a negative errno as age_unseal() would. */
int age_peek_logn(const uint8_t *in, size_t len);

/* Decrypt given the file key itself: parses the header (any stanza types),
 * checks the MAC and the payload. Used by the test vectors, whose stream and
 * header cases come with their file key. */
int age_unseal_file_key(const uint8_t *in, size_t len,
			const uint8_t key[static AGE_FILE_KEY_LEN],
			uint8_t **pt, size_t *ptlen);

#endif
