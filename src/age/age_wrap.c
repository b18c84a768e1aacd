/* The file key wrap every recipient type shares: ChaCha20-Poly1305 of
 * the 16-byte file key under a key used once, so a zero nonce. Around it,
 * the wrapped stanza every type writes and the X25519 agreement of the
 * X25519 and ssh-ed25519 types (age_wrap.h). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/age_recipient.h"
#include "keyfs/secmem.h"

#include "age_hkdf.h"
#include "age_wrap.h"

_Static_assert(AGE_WRAP_KEY_LEN == crypto_aead_chacha20poly1305_ietf_KEYBYTES,
	       "chacha key size");
_Static_assert(AGE_X25519_KEY_LEN == crypto_scalarmult_BYTES, "point size");

static const uint8_t zero_nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];

void age_wrap_file_key(uint8_t body[static AGE_WRAPPED_LEN],
		       const uint8_t file_key[static AGE_FILE_KEY_LEN],
		       const uint8_t key[static AGE_WRAP_KEY_LEN])
{
	/* A zero nonce is safe: every wrap key is used once. */
	crypto_aead_chacha20poly1305_ietf_encrypt(body, NULL, file_key,
						  AGE_FILE_KEY_LEN, NULL, 0,
						  NULL, zero_nonce, key);
}

int age_unwrap_file_key(uint8_t file_key[static AGE_FILE_KEY_LEN],
			const uint8_t *body, size_t len,
			const uint8_t key[static AGE_WRAP_KEY_LEN])
{
	if (len != AGE_WRAPPED_LEN)
		return -EINVAL;
	if (crypto_aead_chacha20poly1305_ietf_decrypt(file_key, NULL, NULL,
						      body, len, NULL, 0,
						      zero_nonce, key) != 0)
		return AGE_WRONG_KEY;
	return 0;
}

/* ---- the wrapped stanza ---- */

size_t age_stanza_wrapped_size(const char *type, const size_t *arglen,
			       size_t nargs)
{
	struct age_stanza s = {
		.type = { type, strlen(type) },
		.nargs = nargs,
		.bodylen = AGE_WRAPPED_LEN,
	};
	size_t i;

	/* age_stanza_size() reads only the lengths. */
	for (i = 0; i < nargs && i < AGE_STANZA_ARGS_MAX; i++)
		s.arg[i].len = arglen[i];
	return age_stanza_size(&s);
}

int age_stanza_wrap(struct age_stanza *s, const char *type,
		    const struct age_str *args, size_t nargs,
		    const uint8_t file_key[static AGE_FILE_KEY_LEN],
		    const uint8_t key[static AGE_WRAP_KEY_LEN])
{
	size_t i, n = AGE_WRAPPED_LEN;
	uint8_t *mem;
	char *p;

	if (nargs > AGE_STANZA_ARGS_MAX)
		return -EINVAL;
	for (i = 0; i < nargs; i++)
		n += args[i].len;
	/* The body first, then the arguments' text: one block to free. */
	mem = malloc(n);
	if (!mem)
		return -ENOMEM;
	age_wrap_file_key(mem, file_key, key);
	memset(s, 0, sizeof(*s));
	s->type = (struct age_str){ type, strlen(type) };
	p = (char *)mem + AGE_WRAPPED_LEN;
	for (i = 0; i < nargs; i++) {
		memcpy(p, args[i].p, args[i].len);
		s->arg[i] = (struct age_str){ p, args[i].len };
		p += args[i].len;
	}
	s->nargs = nargs;
	s->body = mem;
	s->bodylen = AGE_WRAPPED_LEN;
	s->mem = mem;
	return 0;
}

/* ---- the X25519 agreement ---- */

/* Everything one wrap or unwrap derives, in guarded memory. */
struct dh_scratch {
	uint8_t eph[AGE_X25519_KEY_LEN];
	uint8_t dh[AGE_X25519_KEY_LEN];
	uint8_t shared[AGE_X25519_KEY_LEN];
	uint8_t key[AGE_WRAP_KEY_LEN];
};

/* x->key from scalar and point, as age_wrap.h says. libsodium refuses an
 * all-zero result: a low-order point, which the spec forbids. */
static int dh_key(struct dh_scratch *x, const uint8_t *scalar,
		  const uint8_t *point,
		  const uint8_t share[AGE_X25519_KEY_LEN],
		  const struct age_dh *dh)
{
	uint8_t salt[2 * AGE_X25519_KEY_LEN];
	const uint8_t *shared = x->dh;

	if (crypto_scalarmult(x->dh, scalar, point) != 0)
		return -EINVAL;
	if (dh->tweak) {
		if (crypto_scalarmult(x->shared, dh->tweak, x->dh) != 0)
			return -EINVAL;
		shared = x->shared;
	}
	memcpy(salt, share, AGE_X25519_KEY_LEN);
	memcpy(salt + AGE_X25519_KEY_LEN, dh->pk, AGE_X25519_KEY_LEN);
	return age_hkdf(x->key, sizeof(x->key), salt, sizeof(salt), shared,
			AGE_X25519_KEY_LEN, (const uint8_t *)dh->label,
			strlen(dh->label));
}

int age_dh_wrap(struct age_stanza *s, const char *type,
		const struct age_str *pre, size_t npre,
		const uint8_t file_key[static AGE_FILE_KEY_LEN],
		const struct age_dh *dh)
{
	struct age_str args[AGE_STANZA_ARGS_MAX];
	char share64[AGE_B64_LEN(AGE_X25519_KEY_LEN)];
	uint8_t share[AGE_X25519_KEY_LEN];
	struct dh_scratch *x;
	size_t i;
	int ret;

	if (npre >= AGE_STANZA_ARGS_MAX)
		return -EINVAL;
	x = secmem_alloc(sizeof(*x));
	if (!x)
		return -ENOMEM;
	/* A fresh ephemeral key per stanza: the spec's MUST. */
	randombytes_buf(x->eph, sizeof(x->eph));
	crypto_scalarmult_base(share, x->eph);
	ret = dh_key(x, x->eph, dh->pk, share, dh);
	if (ret == 0) {
		for (i = 0; i < npre; i++)
			args[i] = pre[i];
		args[npre] = (struct age_str){
			share64, age_b64_encode(share64, share, sizeof(share))
		};
		ret = age_stanza_wrap(s, type, args, npre + 1, file_key,
				      x->key);
	}
	secmem_free(x);
	return ret;
}

int age_dh_unwrap(uint8_t file_key[static AGE_FILE_KEY_LEN],
		  const struct age_stanza *s,
		  const uint8_t share[static AGE_X25519_KEY_LEN],
		  const uint8_t sk[static AGE_X25519_KEY_LEN],
		  const struct age_dh *dh)
{
	struct dh_scratch *x = secmem_alloc(sizeof(*x));
	int ret;

	if (!x)
		return -ENOMEM;
	/* An all-zero secret (a low-order share) makes the file invalid, not
	 * merely someone else's: -EINVAL, not AGE_WRONG_KEY. */
	ret = dh_key(x, sk, share, share, dh);
	if (ret == 0)
		ret = age_unwrap_file_key(file_key, s->body, s->bodylen,
					  x->key);
	secmem_free(x);
	return ret;
}
