/* HKDF-SHA-256 (RFC 5869) built from libsodium's HMAC-SHA-256: two HMACs
 * for the 32 bytes age needs, more blocks for the general case. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/secmem.h"

#include "age_hkdf.h"

_Static_assert(AGE_HKDF_LEN == crypto_auth_hmacsha256_BYTES, "hmac size");

/* Everything derived from the input keying material, in guarded memory. */
struct hkdf_scratch {
	crypto_auth_hmacsha256_state st;
	uint8_t prk[AGE_HKDF_LEN];
	uint8_t t[AGE_HKDF_LEN];
};

static void extract(struct hkdf_scratch *s, uint8_t prk[AGE_HKDF_LEN],
		    const uint8_t *salt, size_t saltlen, const uint8_t *ikm,
		    size_t ikmlen)
{
	/* HMAC pads its key with zeros, so HashLen zeros and an empty salt
	 * are the same key; this also spares libsodium a NULL pointer. */
	static const uint8_t zeros[AGE_HKDF_LEN];

	if (saltlen == 0) {
		salt = zeros;
		saltlen = sizeof(zeros);
	}
	crypto_auth_hmacsha256_init(&s->st, salt, saltlen);
	if (ikmlen > 0)
		crypto_auth_hmacsha256_update(&s->st, ikm, ikmlen);
	crypto_auth_hmacsha256_final(&s->st, prk);
}

static void expand(struct hkdf_scratch *s, uint8_t *out, size_t outlen,
		   const uint8_t prk[AGE_HKDF_LEN], const uint8_t *info,
		   size_t infolen)
{
	uint8_t i;
	size_t n;

	for (i = 1; outlen > 0; i++, out += n, outlen -= n) {
		crypto_auth_hmacsha256_init(&s->st, prk, AGE_HKDF_LEN);
		if (i > 1)
			crypto_auth_hmacsha256_update(&s->st, s->t, AGE_HKDF_LEN);
		if (infolen > 0)
			crypto_auth_hmacsha256_update(&s->st, info, infolen);
		crypto_auth_hmacsha256_update(&s->st, &i, 1);
		crypto_auth_hmacsha256_final(&s->st, s->t);
		n = outlen < AGE_HKDF_LEN ? outlen : AGE_HKDF_LEN;
		memcpy(out, s->t, n);
	}
}

int age_hkdf_extract(uint8_t prk[static AGE_HKDF_LEN], const uint8_t *salt,
		     size_t saltlen, const uint8_t *ikm, size_t ikmlen)
{
	struct hkdf_scratch *s = secmem_alloc(sizeof(*s));

	if (!s)
		return -ENOMEM;
	extract(s, prk, salt, saltlen, ikm, ikmlen);
	secmem_free(s);
	return 0;
}

/* Expand from prk, or, with prk NULL, extract first into guarded memory. */
static int hkdf(uint8_t *out, size_t outlen, const uint8_t *prk,
		const uint8_t *salt, size_t saltlen, const uint8_t *ikm,
		size_t ikmlen, const uint8_t *info, size_t infolen)
{
	struct hkdf_scratch *s;

	/* The block counter is one byte. */
	if (outlen > AGE_HKDF_MAX)
		return -EINVAL;
	s = secmem_alloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (!prk) {
		extract(s, s->prk, salt, saltlen, ikm, ikmlen);
		prk = s->prk;
	}
	expand(s, out, outlen, prk, info, infolen);
	secmem_free(s);
	return 0;
}

int age_hkdf_expand(uint8_t *out, size_t outlen,
		    const uint8_t prk[static AGE_HKDF_LEN], const uint8_t *info,
		    size_t infolen)
{
	return hkdf(out, outlen, prk, NULL, 0, NULL, 0, info, infolen);
}

int age_hkdf(uint8_t *out, size_t outlen, const uint8_t *salt, size_t saltlen,
	     const uint8_t *ikm, size_t ikmlen, const uint8_t *info,
	     size_t infolen)
{
	return hkdf(out, outlen, NULL, salt, saltlen, ikm, ikmlen, info,
		    infolen);
}
