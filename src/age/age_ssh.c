/* The ssh-ed25519 recipient type of age v1, as age's agessh package
 * defines it: "-> ssh-ed25519 <tag> <share>", where
 *   tag    = SHA-256(the key's SSH wire encoding)[0..4]
 *   pk     = the Ed25519 public key as an X25519 (Montgomery) point
 *   tweak  = HKDF-SHA-256(ikm = "", salt = wire, info = label)
 *   shared = X25519(tweak, X25519(ephemeral, pk))
 *   key    = HKDF-SHA-256(ikm = shared, salt = share || pk, info = label)
 * with label "age-encryption.org/v1/ssh-ed25519". The tweak binds the
 * stanza to the SSH key itself, not just to its X25519 form.
 *
 * Keys come as an authorized_keys line or an unencrypted OpenSSH private
 * key file ("openssh-key-v1", PROTOCOL.key in OpenSSH). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/age_recipient.h"

#include "age_hkdf.h"
#include "age_wrap.h"

#define SSH_TYPE "ssh-ed25519"
#define SSH_LABEL "age-encryption.org/v1/ssh-ed25519"
#define SSH_TAG_LEN 4
#define ED_PK_LEN crypto_sign_ed25519_PUBLICKEYBYTES
#define ED_SK_LEN crypto_sign_ed25519_SECRETKEYBYTES
/* string "ssh-ed25519", string pk */
#define SSH_WIRE_LEN (4 + sizeof(SSH_TYPE) - 1 + 4 + ED_PK_LEN)

#define PEM_BEGIN "-----BEGIN OPENSSH PRIVATE KEY-----"
#define PEM_END "-----END OPENSSH PRIVATE KEY-----"
#define KEY_MAGIC "openssh-key-v1" /* and its NUL */
#define PEM_MAX 16384 /* an Ed25519 key file is about 400 bytes */
#define PAD_BLOCK 8 /* the block size of cipher "none" */

_Static_assert(ED_PK_LEN == AGE_X25519_KEY_LEN, "key sizes");

/* What both sides derive from the public key alone. */
struct ssh_pub {
	uint8_t wire[SSH_WIRE_LEN];
	uint8_t tag[SSH_TAG_LEN];
	uint8_t pk[AGE_X25519_KEY_LEN]; /* the X25519 form */
	uint8_t tweak[AGE_X25519_KEY_LEN];
};

/* In guarded memory, wiped by sodium_free(). */
struct ssh_identity {
	struct ssh_pub pub;
	uint8_t sk[AGE_X25519_KEY_LEN];
};

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static int pub_init(struct ssh_pub *p, const uint8_t ed_pk[ED_PK_LEN])
{
	uint8_t h[crypto_hash_sha256_BYTES];
	uint8_t *w = p->wire;

	put_u32(w, sizeof(SSH_TYPE) - 1);
	memcpy(w + 4, SSH_TYPE, sizeof(SSH_TYPE) - 1);
	w += 4 + sizeof(SSH_TYPE) - 1;
	put_u32(w, ED_PK_LEN);
	memcpy(w + 4, ed_pk, ED_PK_LEN);
	crypto_hash_sha256(h, p->wire, sizeof(p->wire));
	memcpy(p->tag, h, SSH_TAG_LEN);
	/* libsodium refuses points not on the curve and of small order. */
	if (crypto_sign_ed25519_pk_to_curve25519(p->pk, ed_pk) != 0)
		return -EINVAL;
	return age_hkdf(p->tweak, sizeof(p->tweak), p->wire, sizeof(p->wire),
			NULL, 0, (const uint8_t *)SSH_LABEL,
			sizeof(SSH_LABEL) - 1);
}

static int parse_stanza(const struct age_stanza *s, uint8_t tag[SSH_TAG_LEN],
			uint8_t share[AGE_X25519_KEY_LEN])
{
	if (s->nargs != 2 ||
	    age_b64_decode(tag, SSH_TAG_LEN, s->arg[0].p, s->arg[0].len) !=
		    SSH_TAG_LEN ||
	    age_b64_decode(share, AGE_X25519_KEY_LEN, s->arg[1].p,
			   s->arg[1].len) != AGE_X25519_KEY_LEN ||
	    s->bodylen != AGE_WRAPPED_LEN)
		return -EINVAL;
	return 0;
}

static int check(const struct age_stanza *s)
{
	uint8_t tag[SSH_TAG_LEN], share[AGE_X25519_KEY_LEN];

	return parse_stanza(s, tag, share);
}

/* ---- recipient ---- */

static size_t stanza_size(const struct age_recipient *r)
{
	static const size_t arglen[] = { AGE_B64_LEN(SSH_TAG_LEN),
					 AGE_B64_LEN(AGE_X25519_KEY_LEN) };

	(void)r;
	return age_stanza_wrapped_size(SSH_TYPE, arglen, 2);
}

/* X25519 to the key's Montgomery form, tweaked; the tag first. */
static int wrap(const struct age_recipient *r,
		const uint8_t file_key[static AGE_FILE_KEY_LEN],
		struct age_stanza *s)
{
	const struct ssh_pub *p = r->priv;
	const struct age_dh dh = { SSH_LABEL, p->pk, p->tweak };
	char tag[AGE_B64_LEN(SSH_TAG_LEN)];
	const struct age_str arg = {
		tag, age_b64_encode(tag, p->tag, sizeof(p->tag))
	};

	return age_dh_wrap(s, SSH_TYPE, &arg, 1, file_key, &dh);
}

static const struct age_recipient_ops recipient_ops = {
	.type = &age_ssh_ed25519_type,
	.stanza_size = stanza_size,
	.wrap = wrap,
	.destroy = free,
};

/* ---- SSH wire format, bounds-checked ---- */

struct rd {
	const uint8_t *p;
	size_t n;
};

static int rd_u32(struct rd *r, uint32_t *v)
{
	if (r->n < 4)
		return -EINVAL;
	*v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 |
	     (uint32_t)r->p[2] << 8 | r->p[3];
	r->p += 4;
	r->n -= 4;
	return 0;
}

/* A uint32 length and that many bytes. */
static int rd_str(struct rd *r, struct rd *s)
{
	uint32_t len;

	if (rd_u32(r, &len) < 0 || len > r->n)
		return -EINVAL;
	*s = (struct rd){ r->p, len };
	r->p += len;
	r->n -= len;
	return 0;
}

static bool rd_is(const struct rd *s, const char *lit)
{
	return s->n == strlen(lit) && memcmp(s->p, lit, s->n) == 0;
}

/* A public key blob: string type, string key; nothing after. */
static int parse_wire(struct rd blob, const uint8_t **ed_pk)
{
	struct rd type, key;

	if (rd_str(&blob, &type) < 0)
		return -EINVAL;
	if (!rd_is(&type, SSH_TYPE))
		return -EPROTONOSUPPORT;
	if (rd_str(&blob, &key) < 0 || key.n != ED_PK_LEN || blob.n != 0)
		return -EINVAL;
	*ed_pk = key.p;
	return 0;
}

/* Padded standard base64, with the line breaks in ignore skipped. libsodium
 * 1.0.18 takes bytes above 0x7f for digits: check the alphabet first. */
static long b64_padded(uint8_t *out, size_t cap, const char *s, size_t n,
		       const char *ignore)
{
	const char *end;
	size_t i, len;

	for (i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '+' ||
		      s[i] == '/' || s[i] == '=' ||
		      (ignore && s[i] != '\0' && strchr(ignore, s[i]))))
			return -EINVAL;
	if (sodium_base642bin(out, cap, s, n, ignore, &len, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != s + n)
		return -EINVAL;
	return (long)len;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* The next word of s[*i, n), spaces before it skipped. */
static struct age_str next_word(const char *s, size_t n, size_t *i)
{
	size_t start;

	while (*i < n && is_space(s[*i]))
		(*i)++;
	start = *i;
	while (*i < n && !is_space(s[*i]))
		(*i)++;
	return (struct age_str){ s + start, *i - start };
}

int age_ssh_recipient(struct age_recipient *r, const char *line, size_t len,
		      struct age_str *comment)
{
	uint8_t blob[128];
	const uint8_t *ed_pk;
	struct age_str type, key;
	struct ssh_pub *p;
	size_t i = 0;
	long n;
	int ret;

	type = next_word(line, len, &i);
	key = next_word(line, len, &i);
	if (type.len != sizeof(SSH_TYPE) - 1 ||
	    memcmp(type.p, SSH_TYPE, type.len) != 0)
		return type.len > 0 && memchr(type.p, '-', type.len) ?
			       -EPROTONOSUPPORT :
			       -EINVAL;
	n = b64_padded(blob, sizeof(blob), key.p, key.len, NULL);
	if (n < 0)
		return -EINVAL;
	ret = parse_wire((struct rd){ blob, (size_t)n }, &ed_pk);
	/* The blob names its type again: a mismatch is malformed. */
	if (ret < 0)
		return -EINVAL;
	p = malloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	ret = pub_init(p, ed_pk);
	if (ret < 0) {
		free(p);
		return ret;
	}
	if (comment) {
		while (i < len && is_space(line[i]))
			i++;
		while (len > i && is_space(line[len - 1]))
			len--;
		*comment = (struct age_str){ line + i, len - i };
	}
	*r = (struct age_recipient){ &recipient_ops, p };
	return 0;
}

/* ---- identity ---- */

static int unwrap(const struct age_identity *id, const struct age_stanza *s,
		  uint8_t file_key[static AGE_FILE_KEY_LEN])
{
	const struct ssh_identity *si = id->priv;
	const struct age_dh dh = { SSH_LABEL, si->pub.pk, si->pub.tweak };
	uint8_t tag[SSH_TAG_LEN], share[AGE_X25519_KEY_LEN];
	int ret;

	if (!age_stanza_is(s, SSH_TYPE))
		return AGE_NOT_MINE;
	ret = parse_stanza(s, tag, share);
	if (ret < 0)
		return ret;
	if (sodium_memcmp(tag, si->pub.tag, SSH_TAG_LEN) != 0)
		return AGE_NOT_MINE;
	/* A tag that matches by chance (1 in 2^32) and a key that does not
	 * open the body: someone else's stanza after all, AGE_WRONG_KEY. As
	 * for X25519, a low-order share makes the file invalid. */
	return age_dh_unwrap(file_key, s, share, si->sk, &dh);
}

/* "ssh-ed25519 SHA256:...": the fingerprint ssh-keygen -l shows, the
 * unpadded base64 of SHA-256 of the key's wire encoding. */
static int recipient(const struct age_identity *id, char *out, size_t cap)
{
	static const char pre[] = SSH_TYPE " SHA256:";
	const struct ssh_identity *si = id->priv;
	uint8_t h[crypto_hash_sha256_BYTES];
	const int v = sodium_base64_VARIANT_ORIGINAL_NO_PADDING;

	if (cap < sizeof(pre) - 1 + sodium_base64_ENCODED_LEN(sizeof(h), v))
		return -ENOSPC;
	crypto_hash_sha256(h, si->pub.wire, sizeof(si->pub.wire));
	memcpy(out, pre, sizeof(pre) - 1);
	sodium_bin2base64(out + sizeof(pre) - 1, cap - (sizeof(pre) - 1), h,
			  sizeof(h), v);
	return 0;
}

static const struct age_identity_ops identity_ops = {
	.unwrap = unwrap,
	.destroy = sodium_free,
	.recipient = recipient,
};

/* The base64 between the armor lines of an OpenSSH private key file:
 * BEGIN at the start, END and only white space after it. */
static int pem_body(const char *s, size_t n, struct age_str *body)
{
	const char *end = NULL, *p;
	size_t i, b = sizeof(PEM_BEGIN) - 1, e = sizeof(PEM_END) - 1;

	if (n < b || memcmp(s, PEM_BEGIN, b) != 0)
		return -EINVAL;
	for (p = s + b; (size_t)(s + n - p) >= e; p++)
		if (memcmp(p, PEM_END, e) == 0) {
			end = p;
			break;
		}
	if (!end)
		return -EINVAL;
	for (i = (size_t)(end - s) + e; i < n; i++)
		if (!is_space(s[i]) && s[i] != '\n' && s[i] != '\r')
			return -EINVAL;
	*body = (struct age_str){ s + b, (size_t)(end - s) - b };
	return 0;
}

/* The private section of an unencrypted key: two equal check words, the
 * key type, its public key, the 64-byte secret (seed || public key), a
 * comment, and padding 1, 2, 3... up to the block size. */
static int parse_private(struct rd sec, const uint8_t *ed_pk,
			 const uint8_t **seed)
{
	struct rd type, pk, sk, comment;
	uint32_t c1, c2;
	size_t i;

	if (rd_u32(&sec, &c1) < 0 || rd_u32(&sec, &c2) < 0 || c1 != c2 ||
	    rd_str(&sec, &type) < 0 || !rd_is(&type, SSH_TYPE) ||
	    rd_str(&sec, &pk) < 0 || pk.n != ED_PK_LEN ||
	    memcmp(pk.p, ed_pk, ED_PK_LEN) != 0 || rd_str(&sec, &sk) < 0 ||
	    sk.n != ED_SK_LEN ||
	    memcmp(sk.p + ED_SK_LEN - ED_PK_LEN, ed_pk, ED_PK_LEN) != 0 ||
	    rd_str(&sec, &comment) < 0 || sec.n >= PAD_BLOCK)
		return -EINVAL;
	for (i = 0; i < sec.n; i++)
		if (sec.p[i] != i + 1)
			return -EINVAL;
	*seed = sk.p;
	return 0;
}

/* The decoded key file: magic, cipher, KDF, KDF options, one key's public
 * blob and its private section. */
static int parse_key(struct rd k, const uint8_t **ed_pk, const uint8_t **seed)
{
	struct rd cipher, kdf, kdfopts, pub, sec;
	uint32_t nkeys;
	int ret;

	if (k.n < sizeof(KEY_MAGIC) ||
	    memcmp(k.p, KEY_MAGIC, sizeof(KEY_MAGIC)) != 0)
		return -EINVAL;
	k.p += sizeof(KEY_MAGIC);
	k.n -= sizeof(KEY_MAGIC);
	if (rd_str(&k, &cipher) < 0 || rd_str(&k, &kdf) < 0 ||
	    rd_str(&k, &kdfopts) < 0 || rd_u32(&k, &nkeys) < 0 || nkeys != 1 ||
	    rd_str(&k, &pub) < 0)
		return -EINVAL;
	ret = parse_wire(pub, ed_pk);
	if (ret < 0)
		return ret;
	if (!rd_is(&cipher, "none"))
		return AGE_SSH_ENCRYPTED;
	if (!rd_is(&kdf, "none") || kdfopts.n != 0 || rd_str(&k, &sec) < 0 ||
	    k.n != 0)
		return -EINVAL;
	return parse_private(sec, *ed_pk, seed);
}

/* The X25519 secret of the Ed25519 seed, and a check that the seed is the
 * public key's: a file whose halves disagree is corrupt. */
static int set_secret(struct ssh_identity *si, const uint8_t *seed,
		      const uint8_t *ed_pk)
{
	struct {
		uint8_t pk[ED_PK_LEN];
		uint8_t sk[ED_SK_LEN];
	} *kp = sodium_malloc(sizeof(*kp));
	int ret = 0;

	if (!kp)
		return -ENOMEM;
	crypto_sign_seed_keypair(kp->pk, kp->sk, seed);
	if (memcmp(kp->pk, ed_pk, ED_PK_LEN) != 0)
		ret = -EINVAL;
	else if (crypto_sign_ed25519_sk_to_curve25519(si->sk, kp->sk) != 0)
		ret = -EINVAL;
	sodium_free(kp);
	return ret;
}

int age_ssh_identity(struct age_identity *id, const char *pem, size_t len)
{
	const uint8_t *ed_pk, *seed;
	struct ssh_identity *si = NULL;
	struct age_str body;
	uint8_t *k = NULL;
	long n;
	int ret;

	if (len > PEM_MAX || pem_body(pem, len, &body) < 0)
		return -EINVAL;
	/* The decoded file holds the secret key. */
	k = sodium_malloc(body.len + 1);
	si = sodium_malloc(sizeof(*si));
	if (!k || !si) {
		ret = -ENOMEM;
		goto out;
	}
	n = b64_padded(k, body.len, body.p, body.len, "\r\n");
	ret = n < 0 ? -EINVAL :
		      parse_key((struct rd){ k, (size_t)n }, &ed_pk, &seed);
	if (ret < 0)
		goto out;
	ret = pub_init(&si->pub, ed_pk);
	if (ret == 0)
		ret = set_secret(si, seed, ed_pk);
	if (ret < 0)
		goto out;
	/* age's salt uses the identity's own X25519 public key. */
	crypto_scalarmult_base(si->pub.pk, si->sk);
	*id = (struct age_identity){ &identity_ops, si };
	si = NULL;
out:
	sodium_free(si);
	sodium_free(k);
	return ret;
}

const struct age_type age_ssh_ed25519_type = {
	.name = SSH_TYPE,
	.alone = false,
	.check = check,
};
