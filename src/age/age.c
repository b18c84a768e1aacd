/* age v1 files: sealing to recipients and opening with identities, from
 * the header format, the STREAM payload and the recipient types; and the
 * passphrase API keyfs exports with, on top of them.
 *
 * The file key lives in guarded memory (secmem.h), which secmem_free() wipes
 * on every path out. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/age.h"
#include "keyfs/age_header.h"
#include "keyfs/age_recipient.h"
#include "keyfs/secmem.h"

#include "age_stream.h"

/* Plaintext above this would overflow the sealed size; keysets are tiny. */
#define AGE_MAX_PT (SIZE_MAX / 2)

/* ---- sealing ---- */

static size_t sealed_size(size_t stanza_bytes, size_t len)
{
	return age_header_size(stanza_bytes) + age_stream_size(len);
}

size_t age_sealed_size_for(const struct age_recipient *r, size_t n,
			   size_t len)
{
	size_t i, stanzas = 0;

	if (age_recipients_check(r, n) < 0)
		return 0;
	for (i = 0; i < n; i++)
		stanzas += r[i].ops->stanza_size(&r[i]);
	return sealed_size(stanzas, len);
}

size_t age_sealed_size(size_t len, int logn)
{
	/* What age_sealed_size_for() gives for one scrypt recipient, without
	 * making one: that needs memory, and this must not fail. */
	return sealed_size(age_scrypt_stanza_size(logn), len);
}

/* Each recipient's stanza for file_key, at exactly the size it announced:
 * anything else would make st_size lie. */
static int wrap_all(const struct age_recipient *r, size_t n,
		    const uint8_t file_key[AGE_FILE_KEY_LEN],
		    struct age_stanza *s)
{
	size_t i;
	int ret;

	for (i = 0; i < n; i++) {
		ret = r[i].ops->wrap(&r[i], file_key, &s[i]);
		if (ret < 0)
			return ret;
		if (age_stanza_size(&s[i]) != r[i].ops->stanza_size(&r[i]))
			return -EPROTO;
	}
	return 0;
}

int age_seal_to(const uint8_t *pt, size_t len, const struct age_recipient *r,
		size_t n, uint8_t **out, size_t *outlen)
{
	struct age_stanza *s = NULL;
	uint8_t *fk = NULL, *buf = NULL;
	size_t i, size, hlen;
	int ret;

	ret = age_recipients_check(r, n);
	if (ret < 0 || (!pt && len > 0))
		return -EINVAL;
	if (len > AGE_MAX_PT)
		return -EFBIG;
	size = age_sealed_size_for(r, n, len);
	buf = malloc(size);
	s = calloc(n, sizeof(*s));
	fk = secmem_alloc(AGE_FILE_KEY_LEN);
	if (!buf || !s || !fk) {
		ret = -ENOMEM;
		goto out;
	}
	/* The spec's MUST: a fresh file key per file. */
	randombytes_buf(fk, AGE_FILE_KEY_LEN);
	ret = wrap_all(r, n, fk, s);
	if (ret < 0)
		goto out;
	ret = age_header_write(buf, s, n, fk, &hlen);
	if (ret < 0)
		goto out;
	ret = age_stream_seal(fk, pt, len, buf + hlen);
	if (ret < 0)
		goto out;
	*out = buf;
	*outlen = size;
	buf = NULL;
out:
	for (i = 0; s && i < n; i++)
		age_stanza_clear(&s[i]);
	free(s);
	free(buf);
	secmem_free(fk);
	return ret;
}

int age_seal(const uint8_t *pt, size_t len, const struct age_pass *pass,
	     int logn, uint8_t **out, size_t *outlen)
{
	struct age_recipient r;
	int ret;

	ret = age_scrypt_recipient(&r, pass, logn);
	if (ret < 0)
		return ret;
	ret = age_seal_to(pt, len, &r, 1, out, outlen);
	age_recipient_clear(&r);
	return ret;
}

/* ---- opening ---- */

/* A header keyfs will open: parsed, and its stanzas as their types allow. */
static int read_header(const uint8_t *in, size_t len, struct age_header *h)
{
	int ret;

	ret = age_header_parse(in, len, h);
	if (ret < 0)
		return ret;
	ret = age_stanzas_check(h->stanza, h->nstanzas);
	if (ret < 0)
		age_header_free(h);
	return ret;
}

/* Tries each identity on each stanza, in age's order: identities first.
 * A stanza an identity cannot open does not stop the search; a hard error
 * does. */
static int find_file_key(const struct age_header *h,
			 const struct age_identity *id, size_t nid,
			 uint8_t file_key[AGE_FILE_KEY_LEN], size_t *which)
{
	size_t i, j;
	int ret;

	for (i = 0; i < nid; i++) {
		for (j = 0; j < h->nstanzas; j++) {
			ret = id[i].ops->unwrap(&id[i], &h->stanza[j],
						file_key);
			if (ret == AGE_NOT_MINE || ret == AGE_WRONG_KEY)
				continue;
			if (ret == 0 && which)
				*which = i;
			return ret;
		}
	}
	return -EKEYREJECTED;
}

/* Opens a file with the file key given (key) or unwrapped by one of the
 * identities. */
static int unseal(const uint8_t *in, size_t len, const uint8_t *key,
		  const struct age_identity *id, size_t nid, uint8_t **pt,
		  size_t *ptlen, size_t *which)
{
	struct age_header h;
	uint8_t *fk = NULL;
	int ret;

	ret = read_header(in, len, &h);
	if (ret < 0)
		return ret;
	fk = secmem_alloc(AGE_FILE_KEY_LEN);
	if (!fk) {
		ret = -ENOMEM;
		goto out;
	}
	if (key)
		memcpy(fk, key, AGE_FILE_KEY_LEN);
	else
		ret = find_file_key(&h, id, nid, fk, which);
	if (ret < 0)
		goto out;
	ret = age_header_verify(&h, in, fk);
	if (ret < 0)
		goto out;
	ret = age_stream_open(fk, in + h.payload, len - h.payload, pt, ptlen);
out:
	secmem_free(fk);
	age_header_free(&h);
	return ret;
}

int age_unseal_with(const uint8_t *in, size_t len,
		    const struct age_identity *id, size_t nid, uint8_t **pt,
		    size_t *ptlen, size_t *which)
{
	return unseal(in, len, NULL, id, nid, pt, ptlen, which);
}

int age_unseal_file_key(const uint8_t *in, size_t len,
			const uint8_t key[static AGE_FILE_KEY_LEN],
			uint8_t **pt, size_t *ptlen)
{
	return unseal(in, len, key, NULL, 0, pt, ptlen, NULL);
}

int age_unseal(const uint8_t *in, size_t len, const struct age_pass *pass,
	       size_t npass, uint8_t **pt, size_t *ptlen, size_t *which)
{
	struct age_identity *id;
	size_t i, n;
	int ret = 0;

	id = calloc(npass > 0 ? npass : 1, sizeof(*id));
	if (!id)
		return -ENOMEM;
	/* A constructor that fails leaves its slot zeroed, which clearing
	 * below skips. */
	for (n = 0; n < npass && ret == 0; n++)
		ret = age_scrypt_identity(&id[n], &pass[n], AGE_LOGN_MAX);
	if (ret == 0)
		ret = age_unseal_with(in, len, id, npass, pt, ptlen, which);
	for (i = 0; i < n; i++)
		age_identity_clear(&id[i]);
	free(id);
	return ret;
}

int age_peek_logn(const uint8_t *in, size_t len)
{
	struct age_header h;
	int ret;

	ret = read_header(in, len, &h);
	if (ret < 0)
		return ret;
	/* A scrypt stanza is alone, so it is the first; without one,
	 * nothing a passphrase can open. */
	ret = age_scrypt_logn(&h.stanza[0]);
	if (ret < 0 || ret > AGE_LOGN_MAX)
		ret = -EKEYREJECTED;
	age_header_free(&h);
	return ret;
}
