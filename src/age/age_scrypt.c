/* The scrypt passphrase recipient type of age v1: "-> scrypt <salt> <logN>"
 * and the file key wrapped under scrypt(passphrase,
 * "age-encryption.org/v1/scrypt" || salt, N = 2^logN, r = 8, p = 1). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/age_recipient.h"

#include "age_wrap.h"

#define SCRYPT_TYPE "scrypt"
#define SCRYPT_LABEL "age-encryption.org/v1/scrypt"
#define SCRYPT_R 8
#define SCRYPT_P 1
#define LOGN_DIGITS 9 /* more would overflow; "22" is the most keyfs reads */

struct scrypt_recipient {
	struct age_pass pass;
	int logn;
};

struct scrypt_identity {
	struct age_pass pass;
	int max_logn;
};

/* logN is "^[1-9][0-9]*$". Values above any cap parse here and are
 * refused by the identity, before any work. */
static int parse_logn(const struct age_str *s, unsigned long *logn)
{
	unsigned long v = 0;
	size_t i;

	if (s->len == 0 || s->len > LOGN_DIGITS || s->p[0] < '1' ||
	    s->p[0] > '9')
		return -EINVAL;
	for (i = 0; i < s->len; i++) {
		if (s->p[i] < '0' || s->p[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s->p[i] - '0');
	}
	*logn = v;
	return 0;
}

/* The spec's checks of a scrypt stanza, all before any key work. */
static int parse_stanza(const struct age_stanza *s, uint8_t salt[AGE_SALT_LEN],
			unsigned long *logn)
{
	if (s->nargs != 2 ||
	    age_b64_decode(salt, AGE_SALT_LEN, s->arg[0].p, s->arg[0].len) !=
		    AGE_SALT_LEN ||
	    parse_logn(&s->arg[1], logn) < 0 || s->bodylen != AGE_WRAPPED_LEN)
		return -EINVAL;
	return 0;
}

static int check(const struct age_stanza *s)
{
	uint8_t salt[AGE_SALT_LEN];
	unsigned long logn;

	return parse_stanza(s, salt, &logn);
}

int age_scrypt_logn(const struct age_stanza *s)
{
	uint8_t salt[AGE_SALT_LEN];
	unsigned long logn;

	if (!age_stanza_is(s, SCRYPT_TYPE) || parse_stanza(s, salt, &logn) < 0)
		return -EINVAL;
	return (int)logn;
}

/* The wrap key, into key (guarded memory). scrypt fails only for want of
 * memory: N, r and p are always valid here. */
static int wrap_key(uint8_t key[AGE_WRAP_KEY_LEN], const struct age_pass *pass,
		    const uint8_t salt[AGE_SALT_LEN], unsigned long logn)
{
	uint8_t s[sizeof(SCRYPT_LABEL) - 1 + AGE_SALT_LEN];

	memcpy(s, SCRYPT_LABEL, sizeof(SCRYPT_LABEL) - 1);
	memcpy(s + sizeof(SCRYPT_LABEL) - 1, salt, AGE_SALT_LEN);
	if (crypto_pwhash_scryptsalsa208sha256_ll(
		    (const uint8_t *)pass->p, pass->len, s, sizeof(s),
		    (uint64_t)1 << logn, SCRYPT_R, SCRYPT_P, key,
		    AGE_WRAP_KEY_LEN) != 0)
		return -ENOMEM;
	return 0;
}

/* ---- recipient ---- */

size_t age_scrypt_stanza_size(int logn)
{
	const size_t arglen[] = { AGE_B64_LEN(AGE_SALT_LEN),
				  (size_t)snprintf(NULL, 0, "%d", logn) };

	return age_stanza_wrapped_size(SCRYPT_TYPE, arglen, 2);
}

static size_t stanza_size(const struct age_recipient *r)
{
	const struct scrypt_recipient *sr = r->priv;

	return age_scrypt_stanza_size(sr->logn);
}

/* "-> scrypt <salt> <logN>", the salt fresh per file: the spec's MUST. */
static int wrap(const struct age_recipient *r,
		const uint8_t file_key[static AGE_FILE_KEY_LEN],
		struct age_stanza *s)
{
	const struct scrypt_recipient *sr = r->priv;
	char salt64[AGE_B64_LEN(AGE_SALT_LEN)], logn[LOGN_DIGITS + 1];
	uint8_t salt[AGE_SALT_LEN], *key;
	struct age_str args[2];
	int ret;

	key = sodium_malloc(AGE_WRAP_KEY_LEN);
	if (!key)
		return -ENOMEM;
	randombytes_buf(salt, sizeof(salt));
	ret = wrap_key(key, &sr->pass, salt, (unsigned long)sr->logn);
	if (ret == 0) {
		args[0] = (struct age_str){
			salt64, age_b64_encode(salt64, salt, sizeof(salt))
		};
		args[1] = (struct age_str){
			logn, (size_t)snprintf(logn, sizeof(logn), "%d", sr->logn)
		};
		ret = age_stanza_wrap(s, SCRYPT_TYPE, args, 2, file_key, key);
	}
	sodium_free(key);
	return ret;
}

static const struct age_recipient_ops recipient_ops = {
	.type = &age_scrypt_type,
	.stanza_size = stanza_size,
	.wrap = wrap,
	.destroy = free,
};

int age_scrypt_recipient(struct age_recipient *r, const struct age_pass *pass,
			 int logn)
{
	struct scrypt_recipient *sr;

	if (!pass || logn < AGE_LOGN_MIN || logn > AGE_LOGN_MAX)
		return -EINVAL;
	sr = malloc(sizeof(*sr));
	if (!sr)
		return -ENOMEM;
	*sr = (struct scrypt_recipient){ *pass, logn };
	*r = (struct age_recipient){ &recipient_ops, sr };
	return 0;
}

/* ---- identity ---- */

static int unwrap(const struct age_identity *id, const struct age_stanza *s,
		  uint8_t file_key[static AGE_FILE_KEY_LEN])
{
	const struct scrypt_identity *si = id->priv;
	uint8_t salt[AGE_SALT_LEN], *key;
	unsigned long logn;
	int ret;

	if (!age_stanza_is(s, SCRYPT_TYPE))
		return AGE_NOT_MINE;
	ret = parse_stanza(s, salt, &logn);
	if (ret < 0)
		return ret;
	/* Refused before any work: a hostile logN is a memory and CPU bomb.
	 * Not a malformed file, just one this identity will not try. */
	if (logn > (unsigned long)si->max_logn)
		return AGE_WRONG_KEY;
	key = sodium_malloc(AGE_WRAP_KEY_LEN);
	if (!key)
		return -ENOMEM;
	ret = wrap_key(key, &si->pass, salt, logn);
	if (ret == 0)
		ret = age_unwrap_file_key(file_key, s->body, s->bodylen, key);
	sodium_free(key);
	return ret;
}

static const struct age_identity_ops identity_ops = {
	.unwrap = unwrap,
	.destroy = free,
};

int age_scrypt_identity(struct age_identity *id, const struct age_pass *pass,
			int max_logn)
{
	struct scrypt_identity *si;

	if (!pass || max_logn < 1 || max_logn > AGE_LOGN_MAX)
		return -EINVAL;
	si = malloc(sizeof(*si));
	if (!si)
		return -ENOMEM;
	*si = (struct scrypt_identity){ *pass, max_logn };
	*id = (struct age_identity){ &identity_ops, si };
	return 0;
}

const struct age_type age_scrypt_type = {
	.name = SCRYPT_TYPE,
	.alone = true,
	.check = check,
};
