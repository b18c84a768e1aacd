/* Unit tests of sealing to recipient lists and opening with identity
 * lists: byte compatibility of the passphrase API under a fixed random
 * stream, exact sealed sizes, the rule that an scrypt stanza is alone, and
 * a recipient type defined here, outside the registered table, the way a
 * new type plugs in. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/age.h"
#include "keyfs/age_header.h"
#include "keyfs/age_recipient.h"

#include "age_stream.h"
#include "tap.h"

/* ---- a fixed random stream: call i gets the ChaCha20 stream of seed i ---- */

static uint64_t rng_calls;

static const char *rng_name(void)
{
	return "fixed";
}

static void rng_buf(void *buf, size_t n)
{
	uint8_t seed[randombytes_SEEDBYTES] = { 0 };

	memcpy(seed, &rng_calls, sizeof(rng_calls));
	rng_calls++;
	randombytes_buf_deterministic(buf, n, seed);
}

static uint32_t rng_random(void)
{
	uint32_t v;

	rng_buf(&v, sizeof(v));
	return v;
}

static void rng_stir(void)
{
}

static int rng_close(void)
{
	return 0;
}

static struct randombytes_implementation fixed_rng = {
	.implementation_name = rng_name,
	.random = rng_random,
	.stir = rng_stir,
	.buf = rng_buf,
	.close = rng_close,
};

static const struct age_pass pw = { "correct horse", 13 };

static bool sha256_is(const uint8_t *b, size_t n, const char *hex)
{
	uint8_t h[crypto_hash_sha256_BYTES];
	char got[sizeof(h) * 2 + 1];

	crypto_hash_sha256(h, b, n);
	sodium_bin2hex(got, sizeof(got), h, sizeof(h));
	return strcmp(got, hex) == 0;
}

/* What age_seal() wrote under this random stream before its code was split
 * into header, stream and recipient modules: the same bytes still. */
static void test_known_bytes(void)
{
	static const struct {
		size_t len;
		const char *sha256;
	} kat[] = {
		{ 0, "a87c0c75645abae8518392e07138250f69fbd017b22e82bb91b23ee872d465f4" },
		{ 5, "2b5be726adca79f69bce63dc1d25d70fb4960d1a393526d40b39a8f5acf0acd8" },
		{ 65536, "00ee83314411803015e36f95f4d8d1dd273d8b2cbcbedef301803f151ba2f0ef" },
		{ 70000, "81fd762f3794421b6ced377c5399b60f28b62f6804dc8dd1e2c74b7239bafea8" },
	};
	uint8_t *pt = malloc(70000), *c = NULL;
	size_t i, n;
	int ret;

	for (i = 0; i < 70000; i++)
		pt[i] = (uint8_t)(i * 7 + 3);
	rng_calls = 0;
	for (i = 0; i < sizeof(kat) / sizeof(kat[0]); i++) {
		ret = age_seal(pt, kat[i].len, &pw, 10, &c, &n);
		tap_ok(ret == 0 && sha256_is(c, n, kat[i].sha256),
		       "seal of %zu bytes: the known bytes", kat[i].len);
		free(c);
		c = NULL;
	}
	free(pt);
}

/* ---- a recipient type of the test's own: a shared 32-byte key, named ---- */

struct test_key {
	const char *name;
	uint8_t key[AGE_WRAP_KEY_LEN];
	int lie; /* bytes stanza_size() adds to the truth */
};

static int test_check(const struct age_stanza *s)
{
	return s->nargs == 1 && s->bodylen == AGE_WRAPPED_LEN ? 0 : -EINVAL;
}

static const struct age_type test_type = { "keyfs-test", false, test_check };

static size_t test_stanza_size(const struct age_recipient *r)
{
	const struct test_key *k = r->priv;
	const struct age_stanza s = {
		.type = { test_type.name, strlen(test_type.name) },
		.arg = { { k->name, strlen(k->name) } },
		.nargs = 1,
		.bodylen = AGE_WRAPPED_LEN,
	};

	return age_stanza_size(&s) + k->lie;
}

static int test_wrap(const struct age_recipient *r,
		     const uint8_t file_key[static AGE_FILE_KEY_LEN],
		     struct age_stanza *s)
{
	const struct test_key *k = r->priv;
	uint8_t *body = malloc(AGE_WRAPPED_LEN);

	if (!body)
		return -ENOMEM;
	age_wrap_file_key(body, file_key, k->key);
	*s = (struct age_stanza){
		.type = { test_type.name, strlen(test_type.name) },
		.arg = { { k->name, strlen(k->name) } },
		.nargs = 1,
		.body = body,
		.bodylen = AGE_WRAPPED_LEN,
		.mem = body,
	};
	return 0;
}

static int test_unwrap(const struct age_identity *id,
		       const struct age_stanza *s,
		       uint8_t file_key[static AGE_FILE_KEY_LEN])
{
	const struct test_key *k = id->priv;

	if (!age_stanza_is(s, test_type.name) || s->nargs != 1 ||
	    s->arg[0].len != strlen(k->name) ||
	    memcmp(s->arg[0].p, k->name, s->arg[0].len) != 0)
		return AGE_NOT_MINE;
	return age_unwrap_file_key(file_key, s->body, s->bodylen, k->key);
}

static int broken_unwrap(const struct age_identity *id,
			 const struct age_stanza *s,
			 uint8_t file_key[static AGE_FILE_KEY_LEN])
{
	(void)id;
	(void)s;
	(void)file_key;
	return -EIO;
}

static const struct age_recipient_ops test_recipient_ops = {
	&test_type, test_stanza_size, test_wrap, NULL,
};
static const struct age_identity_ops test_identity_ops = { test_unwrap, NULL,
							   NULL };
static const struct age_identity_ops broken_identity_ops = { broken_unwrap,
							     NULL, NULL };

static struct test_key alice = { "alice", { 1 }, 0 };
static struct test_key bob = { "bob", { 2 }, 0 };
static struct test_key mallory = { "bob", { 3 }, 0 }; /* bob's name, not key */
static struct test_key liar = { "liar", { 4 }, 1 };

static struct age_recipient rcpt(struct test_key *k)
{
	return (struct age_recipient){ &test_recipient_ops, k };
}

static struct age_identity ident(struct test_key *k)
{
	return (struct age_identity){ &test_identity_ops, k };
}

/* ---- sizes ---- */

static void test_sizes(void)
{
	static const size_t sizes[] = { 0, 1, 65536, 65537 };
	struct age_recipient r[3] = { rcpt(&alice), rcpt(&bob) };
	uint8_t *pt = calloc(1, 65537), *c;
	size_t i, n;
	int ret;

	ret = age_scrypt_recipient(&r[2], &pw, 10);
	TAP_EQ_INT(ret, 0, "scrypt recipient at logN 10");
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		c = NULL;
		n = 0;
		ret = age_seal_to(pt, sizes[i], &r[2], 1, &c, &n);
		tap_ok(ret == 0 && n == age_sealed_size_for(&r[2], 1, sizes[i]) &&
			       n == age_sealed_size(sizes[i], 10),
		       "scrypt: sealed size of %zu bytes is exact", sizes[i]);
		free(c);
		c = NULL;
		ret = age_seal_to(pt, sizes[i], r, 2, &c, &n);
		tap_ok(ret == 0 && n == age_sealed_size_for(r, 2, sizes[i]),
		       "two recipients: sealed size of %zu bytes is exact",
		       sizes[i]);
		free(c);
	}
	/* Header, each stanza, MAC line and payload, nothing assumed. */
	TAP_EQ_INT(age_sealed_size_for(r, 2, 1),
		   22 + (3 + 10 + 1 + 5 + 1 + 44) + (3 + 10 + 1 + 3 + 1 + 44) +
			   48 + AGE_NONCE_LEN + 1 + AGE_TAG_LEN,
		   "two stanzas add up");
	TAP_EQ_INT(age_sealed_size_for(r, 0, 1), 0, "no recipient: size 0");
	age_recipient_clear(&r[2]);
	free(pt);
}

/* ---- the scrypt stanza is alone ---- */

/* A file whose header holds an scrypt stanza for pw and a test stanza for
 * alice, both under one file key: a file age never writes. */
static uint8_t *scrypt_and_other(size_t *len, uint8_t fk[AGE_FILE_KEY_LEN])
{
	struct age_recipient r[2] = { { 0 }, rcpt(&alice) };
	struct age_stanza s[2];
	size_t hsize, hlen;
	uint8_t *out;

	memset(s, 0, sizeof(s));
	age_scrypt_recipient(&r[0], &pw, 10);
	randombytes_buf(fk, AGE_FILE_KEY_LEN);
	r[0].ops->wrap(&r[0], fk, &s[0]);
	r[1].ops->wrap(&r[1], fk, &s[1]);
	hsize = age_header_size(age_stanza_size(&s[0]) + age_stanza_size(&s[1]));
	*len = hsize + age_stream_size(3);
	out = malloc(*len);
	age_header_write(out, s, 2, fk, &hlen);
	age_stream_seal(fk, (const uint8_t *)"abc", 3, out + hlen);
	age_stanza_clear(&s[0]);
	age_stanza_clear(&s[1]);
	age_recipient_clear(&r[0]);
	return out;
}

static void test_scrypt_alone(void)
{
	struct age_recipient r[3] = { { 0 }, { 0 }, rcpt(&alice) };
	struct age_identity id[2] = { { 0 }, ident(&alice) };
	uint8_t fk[AGE_FILE_KEY_LEN], *c = NULL, *pt = NULL;
	size_t n = 0, ptlen;

	age_scrypt_recipient(&r[0], &pw, 10);
	age_scrypt_recipient(&r[1], &pw, 10);
	age_scrypt_identity(&id[0], &pw, AGE_LOGN_MAX);
	TAP_EQ_INT(age_seal_to((const uint8_t *)"x", 1, r, 2, &c, &n), -EINVAL,
		   "seal: two scrypt recipients refused");
	TAP_EQ_INT(age_seal_to((const uint8_t *)"x", 1, &r[1], 2, &c, &n),
		   -EINVAL, "seal: scrypt and another recipient refused");
	TAP_EQ_INT(age_sealed_size_for(&r[1], 2, 1), 0,
		   "no size for scrypt and another recipient");

	c = scrypt_and_other(&n, fk);
	TAP_EQ_INT(age_unseal(c, n, &pw, 1, &pt, &ptlen, NULL), -EINVAL,
		   "unseal: scrypt next to another stanza, with the passphrase");
	TAP_EQ_INT(age_unseal_with(c, n, &id[1], 1, &pt, &ptlen, NULL),
		   -EINVAL, "unseal: scrypt next to another stanza, other identity");
	TAP_EQ_INT(age_unseal_file_key(c, n, fk, &pt, &ptlen), -EINVAL,
		   "unseal: scrypt next to another stanza, file key");
	TAP_EQ_INT(age_peek_logn(c, n), -EINVAL,
		   "peek: scrypt next to another stanza");
	free(c);
	age_identity_clear(&id[0]);
	age_recipient_clear(&r[0]);
	age_recipient_clear(&r[1]);
}

/* ---- recipient and identity lists ---- */

static int open_with(const uint8_t *c, size_t n, const struct age_identity *id,
		     size_t nid, size_t *which)
{
	uint8_t *pt = NULL;
	size_t ptlen = 0;
	int ret;

	*which = 99;
	ret = age_unseal_with(c, n, id, nid, &pt, &ptlen, which);
	if (ret == 0 && (ptlen != 5 || memcmp(pt, "hello", 5) != 0))
		ret = -ENOTRECOVERABLE;
	if (pt)
		sodium_free(pt);
	return ret;
}

static void test_lists(void)
{
	struct age_recipient r[2] = { rcpt(&alice), rcpt(&bob) }, lr = rcpt(&liar);
	struct age_identity id[3] = { { 0 }, ident(&mallory), ident(&bob) };
	struct age_identity broken = { &broken_identity_ops, NULL };
	uint8_t *c = NULL, *pt = NULL;
	size_t n = 0, ptlen, which;

	age_scrypt_identity(&id[0], &pw, AGE_LOGN_MAX);
	TAP_EQ_INT(age_seal_to((const uint8_t *)"hello", 5, r, 2, &c, &n), 0,
		   "seal to alice and bob");
	TAP_EQ_INT(age_peek_logn(c, n), -EKEYREJECTED, "no work factor to peek");
	TAP_EQ_INT(open_with(c, n, id, 3, &which), 0,
		   "passphrase, wrong key under bob's name, bob");
	TAP_EQ_INT(which, 2, "bob's identity opened it");
	TAP_EQ_INT(open_with(c, n, &id[2], 1, &which), 0, "bob alone");
	TAP_EQ_INT(which, 0, "index among the identities given");
	TAP_EQ_INT(open_with(c, n, id, 2, &which), -EKEYREJECTED,
		   "passphrase and a wrong key: rejected");
	TAP_EQ_INT(open_with(c, n, NULL, 0, &which), -EKEYREJECTED,
		   "no identity: rejected");
	TAP_EQ_INT(open_with(c, n, &broken, 1, &which), -EIO,
		   "an identity's hard error stops the search");
	TAP_EQ_INT(age_unseal(c, n, &pw, 1, &pt, &ptlen, NULL), -EKEYREJECTED,
		   "age_unseal: not a passphrase file");
	c[n - 1] ^= 1;
	TAP_EQ_INT(open_with(c, n, &id[2], 1, &which), -EBADMSG,
		   "flipped payload byte");
	free(c);
	c = NULL;

	TAP_EQ_INT(age_seal_to((const uint8_t *)"hello", 5, &lr, 1, &c, &n),
		   -EPROTO, "a stanza not the size announced");
	TAP_EQ_INT(age_seal_to(NULL, 5, r, 2, &c, &n), -EINVAL, "no plaintext");
	TAP_EQ_INT(age_seal_to((const uint8_t *)"", 0, NULL, 0, &c, &n), -EINVAL,
		   "no recipient");
	age_identity_clear(&id[0]);
}

/* The identity's own cap on the work factor, and its arguments. */
static void test_scrypt_identity(void)
{
	struct age_identity id;
	uint8_t *c = NULL, *pt = NULL;
	size_t n = 0, ptlen, which;

	TAP_EQ_INT(age_scrypt_identity(&id, &pw, 0), -EINVAL, "max logN 0");
	TAP_EQ_INT(age_scrypt_identity(&id, &pw, AGE_LOGN_MAX + 1), -EINVAL,
		   "max logN above the cap");
	TAP_EQ_INT(age_scrypt_identity(&id, NULL, 10), -EINVAL, "no passphrase");
	TAP_EQ_INT(age_scrypt_recipient(&(struct age_recipient){ 0 }, &pw, 9),
		   -EINVAL, "recipient below AGE_LOGN_MIN");
	age_seal((const uint8_t *)"hello", 5, &pw, 11, &c, &n);
	age_scrypt_identity(&id, &pw, 10);
	TAP_EQ_INT(age_unseal_with(c, n, &id, 1, &pt, &ptlen, &which),
		   -EKEYREJECTED, "logN 11 above this identity's 10");
	age_identity_clear(&id);
	age_scrypt_identity(&id, &pw, 11);
	TAP_EQ_INT(open_with(c, n, &id, 1, &which), 0, "logN 11 within 11");
	age_identity_clear(&id);
	free(c);
}

int main(void)
{
	/* Before sodium_init(), which would pick the system's generator. */
	randombytes_set_implementation(&fixed_rng);
	if (sodium_init() < 0)
		return 1;
	test_known_bytes();
	test_sizes();
	test_scrypt_alone();
	test_lists();
	test_scrypt_identity();
	return tap_done();
}
