/* The X25519 recipient type of age v1: "-> X25519 <ephemeral share>" and
 * the file key wrapped under HKDF-SHA-256(ikm = the shared secret, salt =
 * share || recipient, info = "age-encryption.org/v1/X25519").
 *
 * Recipients are "age1..." and identities "AGE-SECRET-KEY-1..." Bech32
 * strings of the 32-byte public and secret keys. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/secmem.h"
#include "age_hkdf.h"
#include "keyfs/age_recipient.h"
#include "bech32.h"

#define X25519_TYPE "X25519"
#define X25519_LABEL "age-encryption.org/v1/X25519"
#define RECIPIENT_HRP "age"
#define IDENTITY_HRP "age-secret-key-"

_Static_assert(AGE_X25519_KEY_LEN == crypto_scalarmult_BYTES, "point size");
_Static_assert(AGE_X25519_KEY_LEN == crypto_scalarmult_SCALARBYTES,
	       "scalar size");
_Static_assert(AGE_X25519_RECIPIENT_LEN ==
		       BECH32_LEN(sizeof(RECIPIENT_HRP) - 1, AGE_X25519_KEY_LEN),
	       "age1 length");
_Static_assert(AGE_X25519_IDENTITY_LEN ==
		       BECH32_LEN(sizeof(IDENTITY_HRP) - 1, AGE_X25519_KEY_LEN),
	       "AGE-SECRET-KEY-1 length");

struct x25519_recipient {
	uint8_t pk[AGE_X25519_KEY_LEN];
};

/* In guarded memory, wiped by sodium_free(). */
struct x25519_identity {
	uint8_t sk[AGE_X25519_KEY_LEN];
	uint8_t pk[AGE_X25519_KEY_LEN];
};

/* Everything one wrap or unwrap derives, in guarded memory. */
struct x25519_scratch {
	uint8_t eph[AGE_X25519_KEY_LEN];
	uint8_t shared[AGE_X25519_KEY_LEN];
	uint8_t key[AGE_WRAP_KEY_LEN];
};

static int parse_stanza(const struct age_stanza *s,
			uint8_t share[AGE_X25519_KEY_LEN])
{
	if (s->nargs != 1 ||
	    age_b64_decode(share, AGE_X25519_KEY_LEN, s->arg[0].p,
			   s->arg[0].len) != AGE_X25519_KEY_LEN ||
	    s->bodylen != AGE_WRAPPED_LEN)
		return -EINVAL;
	return 0;
}

static int check(const struct age_stanza *s)
{
	uint8_t share[AGE_X25519_KEY_LEN];

	return parse_stanza(s, share);
}

/* key = HKDF(shared, share || pk, label). */
static int derive(uint8_t key[AGE_WRAP_KEY_LEN],
		  const uint8_t shared[AGE_X25519_KEY_LEN],
		  const uint8_t share[AGE_X25519_KEY_LEN],
		  const uint8_t pk[AGE_X25519_KEY_LEN])
{
	uint8_t salt[2 * AGE_X25519_KEY_LEN];

	memcpy(salt, share, AGE_X25519_KEY_LEN);
	memcpy(salt + AGE_X25519_KEY_LEN, pk, AGE_X25519_KEY_LEN);
	return age_hkdf(key, AGE_WRAP_KEY_LEN, salt, sizeof(salt), shared,
			AGE_X25519_KEY_LEN, (const uint8_t *)X25519_LABEL,
			sizeof(X25519_LABEL) - 1);
}

/* ---- recipient ---- */

static size_t stanza_size(const struct age_recipient *r)
{
	const struct age_stanza s = {
		.type = { X25519_TYPE, sizeof(X25519_TYPE) - 1 },
		.arg = { { NULL, AGE_B64_LEN(AGE_X25519_KEY_LEN) } },
		.nargs = 1,
		.bodylen = AGE_WRAPPED_LEN,
	};

	(void)r;
	return age_stanza_size(&s);
}

struct x25519_stanza_mem {
	char share[AGE_B64_LEN(AGE_X25519_KEY_LEN)];
	uint8_t body[AGE_WRAPPED_LEN];
};

static int wrap(const struct age_recipient *r,
		const uint8_t file_key[static AGE_FILE_KEY_LEN],
		struct age_stanza *s)
{
	const struct x25519_recipient *xr = r->priv;
	struct x25519_scratch *x;
	struct x25519_stanza_mem *m;
	uint8_t share[AGE_X25519_KEY_LEN];
	int ret;

	m = malloc(sizeof(*m));
	x = secmem_alloc(sizeof(*x));
	if (!m || !x) {
		ret = -ENOMEM;
		goto out;
	}
	/* A fresh ephemeral key per stanza: the spec's MUST. */
	randombytes_buf(x->eph, sizeof(x->eph));
	crypto_scalarmult_base(share, x->eph);
	/* All zeros (a low-order recipient) is refused by libsodium. */
	if (crypto_scalarmult(x->shared, x->eph, xr->pk) != 0) {
		ret = -EINVAL;
		goto out;
	}
	ret = derive(x->key, x->shared, share, xr->pk);
	if (ret < 0)
		goto out;
	age_wrap_file_key(m->body, file_key, x->key);
	memset(s, 0, sizeof(*s));
	s->type = (struct age_str){ X25519_TYPE, sizeof(X25519_TYPE) - 1 };
	s->arg[0] = (struct age_str){
		m->share, age_b64_encode(m->share, share, sizeof(share))
	};
	s->nargs = 1;
	s->body = m->body;
	s->bodylen = sizeof(m->body);
	s->mem = m;
	m = NULL;
out:
	free(m);
	secmem_free(x);
	return ret;
}

static const struct age_recipient_ops recipient_ops = {
	.type = &age_x25519_type,
	.stanza_size = stanza_size,
	.wrap = wrap,
	.destroy = free,
};

int age_x25519_recipient_key(struct age_recipient *r,
			     const uint8_t pk[static AGE_X25519_KEY_LEN])
{
	static const uint8_t probe[AGE_X25519_KEY_LEN] = { 1 };
	uint8_t q[AGE_X25519_KEY_LEN];
	struct x25519_recipient *xr;

	/* A low-order point gives the all-zero secret for every clamped
	 * scalar (all multiples of the cofactor): no file can be sealed to
	 * it, so say so now rather than at the first seal. */
	if (crypto_scalarmult(q, probe, pk) != 0)
		return -EINVAL;
	xr = malloc(sizeof(*xr));
	if (!xr)
		return -ENOMEM;
	memcpy(xr->pk, pk, AGE_X25519_KEY_LEN);
	*r = (struct age_recipient){ &recipient_ops, xr };
	return 0;
}

int age_x25519_recipient(struct age_recipient *r, const char *s, size_t len)
{
	uint8_t pk[AGE_X25519_KEY_LEN];
	char hrp[sizeof(RECIPIENT_HRP)];

	/* Recipients are lowercase, as age writes and reads them. */
	if (len != AGE_X25519_RECIPIENT_LEN || memcmp(s, "age1", 4) != 0 ||
	    bech32_decode(hrp, sizeof(hrp), pk, sizeof(pk), s, len) !=
		    AGE_X25519_KEY_LEN ||
	    strcmp(hrp, RECIPIENT_HRP) != 0)
		return -EINVAL;
	return age_x25519_recipient_key(r, pk);
}

/* ---- identity ---- */

static int unwrap(const struct age_identity *id, const struct age_stanza *s,
		  uint8_t file_key[static AGE_FILE_KEY_LEN])
{
	const struct x25519_identity *xi = id->priv;
	uint8_t share[AGE_X25519_KEY_LEN];
	struct x25519_scratch *x;
	int ret;

	if (!age_stanza_is(s, X25519_TYPE))
		return AGE_NOT_MINE;
	ret = parse_stanza(s, share);
	if (ret < 0)
		return ret;
	x = secmem_alloc(sizeof(*x));
	if (!x)
		return -ENOMEM;
	/* The spec: an all-zero shared secret (a low-order share) makes
	 * the file invalid, not merely someone else's. */
	if (crypto_scalarmult(x->shared, xi->sk, share) != 0)
		ret = -EINVAL;
	else
		ret = derive(x->key, x->shared, share, xi->pk);
	if (ret == 0)
		ret = age_unwrap_file_key(file_key, s->body, s->bodylen,
					  x->key);
	secmem_free(x);
	return ret;
}

/* "age1...": the public key computed when the identity was made. */
static int recipient(const struct age_identity *id, char *out, size_t cap)
{
	const struct x25519_identity *xi = id->priv;
	long n;

	n = bech32_encode(out, cap, RECIPIENT_HRP, xi->pk, sizeof(xi->pk));
	return n < 0 ? (int)n : 0;
}

static const struct age_identity_ops identity_ops = {
	.unwrap = unwrap,
	.destroy = sodium_free,
	.recipient = recipient,
};

int age_x25519_identity(struct age_identity *id, const char *s, size_t len)
{
	char hrp[sizeof(IDENTITY_HRP)];
	struct x25519_identity *xi;
	long n;

	/* Identities are uppercase, as age writes and reads them. */
	if (len != AGE_X25519_IDENTITY_LEN ||
	    memcmp(s, "AGE-SECRET-KEY-1", 16) != 0)
		return -EINVAL;
	xi = sodium_malloc(sizeof(*xi));
	if (!xi)
		return -ENOMEM;
	n = bech32_decode(hrp, sizeof(hrp), xi->sk, sizeof(xi->sk), s, len);
	if (n != AGE_X25519_KEY_LEN || strcmp(hrp, IDENTITY_HRP) != 0) {
		sodium_free(xi);
		return -EINVAL;
	}
	crypto_scalarmult_base(xi->pk, xi->sk);
	*id = (struct age_identity){ &identity_ops, xi };
	return 0;
}

const struct age_type age_x25519_type = {
	.name = X25519_TYPE,
	.alone = false,
	.check = check,
};
