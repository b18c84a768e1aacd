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

#include "keyfs/age_recipient.h"

#include "age_wrap.h"
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

/* ---- recipient ---- */

static size_t stanza_size(const struct age_recipient *r)
{
	static const size_t arglen[] = { AGE_B64_LEN(AGE_X25519_KEY_LEN) };

	(void)r;
	return age_stanza_wrapped_size(X25519_TYPE, arglen, 1);
}

static int wrap(const struct age_recipient *r,
		const uint8_t file_key[static AGE_FILE_KEY_LEN],
		struct age_stanza *s)
{
	const struct x25519_recipient *xr = r->priv;
	const struct age_dh dh = { X25519_LABEL, xr->pk, NULL };

	return age_dh_wrap(s, X25519_TYPE, NULL, 0, file_key, &dh);
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
	const struct age_dh dh = { X25519_LABEL, xi->pk, NULL };
	uint8_t share[AGE_X25519_KEY_LEN];
	int ret;

	if (!age_stanza_is(s, X25519_TYPE))
		return AGE_NOT_MINE;
	ret = parse_stanza(s, share);
	if (ret < 0)
		return ret;
	return age_dh_unwrap(file_key, s, share, xi->sk, &dh);
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
