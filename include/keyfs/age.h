/* age v1 files (C2SP age spec): seal to a list of recipients, open with a
 * list of identities, and the passphrase API keyfs exports with: one
 * scrypt stanza, alone. The pieces are in age_header.h (header format),
 * age_stream.h (payload), age_hkdf.h and age_recipient.h (recipient and
 * identity types).
 *
 * Everything works on whole buffers: keysets are small and bounded by the
 * import limits, and a buffer API keeps the parsers fuzzable.
 *
 * Errors, as negative errno:
 *   -EINVAL        not an age v1 file, malformed header or stanza; a bad
 *                  argument, such as a recipient list age forbids
 *   -EKEYREJECTED  no passphrase (identity) opens a stanza, or logN above
 *                  AGE_LOGN_MAX
 *   -EBADMSG       header MAC or payload authentication failed, truncated
 *   -ENOMEM        allocation failed
 *   -EFBIG         plaintext too large to seal (beyond SIZE_MAX / 2)
 *   -EPROTO        a recipient type's stanza is not the size it announced
 *                  (a bug in that type)
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

/* ---- the general API: recipient and identity lists (age_recipient.h) ---- */

struct age_recipient;
struct age_identity;

/* Exact size of the binary file age_seal_to() writes for len plaintext
 * bytes to the n recipients r: the header with each recipient's stanza,
 * and the payload. 0 if age_seal_to() would refuse the list. */
size_t age_sealed_size_for(const struct age_recipient *r, size_t n,
			   size_t len);

/* Seal pt to the n recipients r: a fresh random file key and nonce (and
 * whatever the recipients draw) on every call. *out is malloc()ed and
 * exactly age_sealed_size_for(r, n, len) long. -EINVAL for an empty list
 * or one that mixes an "alone" type (scrypt) with others. */
int age_seal_to(const uint8_t *pt, size_t len, const struct age_recipient *r,
		size_t n, uint8_t **out, size_t *outlen);

/* Open a binary age file with the first of the nid identities that
 * unwraps one of its stanzas; *pt and *which as for age_unseal(). A
 * stanza keyfs knows (age_recipient.h) must pass its type's checks, and
 * an "alone" one be alone, whichever identities are given. */
int age_unseal_with(const uint8_t *in, size_t len,
		    const struct age_identity *id, size_t nid, uint8_t **pt,
		    size_t *ptlen, size_t *which);

#endif
