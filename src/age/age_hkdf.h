/* HKDF-SHA-256 (RFC 5869) on libsodium's HMAC-SHA-256, which is all
 * libsodium 1.0.18 offers: age derives its header MAC key, its payload key
 * and some recipients' wrap keys with it.
 *
 * The PRK and the HMAC states live in sodium_malloc() memory, wiped before
 * each call returns. Returns 0 or a negative errno:
 *   -EINVAL  more output asked of expand than RFC 5869 allows
 *   -ENOMEM  no guarded memory for the scratch state
 */
#ifndef KEYFS_AGE_HKDF_H
#define KEYFS_AGE_HKDF_H

#include <stddef.h>
#include <stdint.h>

#define AGE_HKDF_LEN 32 /* SHA-256 output: the PRK and one expand block */
#define AGE_HKDF_MAX (255 * AGE_HKDF_LEN)

/* PRK = HMAC-SHA-256(salt, ikm). An empty salt (saltlen 0, salt may then
 * be NULL) means HashLen zero bytes, as the RFC says. */
int age_hkdf_extract(uint8_t prk[static AGE_HKDF_LEN], const uint8_t *salt,
		     size_t saltlen, const uint8_t *ikm, size_t ikmlen);

/* OKM = T(1) || T(2) || ... cut to outlen (at most AGE_HKDF_MAX), where
 * T(i) = HMAC-SHA-256(prk, T(i-1) || info || i). */
int age_hkdf_expand(uint8_t *out, size_t outlen,
		    const uint8_t prk[static AGE_HKDF_LEN], const uint8_t *info,
		    size_t infolen);

/* Extract, then expand. */
int age_hkdf(uint8_t *out, size_t outlen, const uint8_t *salt, size_t saltlen,
	     const uint8_t *ikm, size_t ikmlen, const uint8_t *info,
	     size_t infolen);

#endif
