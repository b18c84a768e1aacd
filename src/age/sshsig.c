/* SSH signatures (OpenSSH PROTOCOL.sshsig) of Ed25519 keys. The blob:
 *   "SSHSIG" uint32 1, string publickey, string namespace,
 *   string reserved, string hash_algorithm, string signature
 * and what the key signs:
 *   "SSHSIG" string namespace, string reserved, string hash_algorithm,
 *   string H(message)
 * where publickey is string "ssh-ed25519" string pk and signature is
 * string "ssh-ed25519" string sig. The reserved field is empty in what
 * we write and in what is signed; a non-empty one in a blob is ignored,
 * as the protocol asks and ssh-keygen does. The allowed_signers part is
 * in sshsig_allowed.c. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/sshsig.h"

#define MAGIC "SSHSIG" /* without its NUL, and no length before it */
#define MAGIC_LEN (sizeof(MAGIC) - 1)
#define VERSION 1
#define KEY_TYPE "ssh-ed25519"
#define KEY_TYPE_LEN (sizeof(KEY_TYPE) - 1)
#define HASH_LEN 6 /* "sha512" and "sha256" */
#define BEGIN "-----BEGIN SSH SIGNATURE-----\n"
#define END_LINE "-----END SSH SIGNATURE-----"
/* What ends the base64: ssh-keygen looks for the newline too. */
#define END "\n" END_LINE
#define COLUMNS 70 /* ssh-keygen's line width */

#define STR(n) (4 + (n))
#define PUB_BLOB_LEN (STR(KEY_TYPE_LEN) + STR(SSHSIG_PK_LEN))
#define SIG_BLOB_LEN (STR(KEY_TYPE_LEN) + STR(crypto_sign_BYTES))
#define BLOB_LEN(nslen)                                                                  \
	(MAGIC_LEN + 4 + STR(PUB_BLOB_LEN) + STR(nslen) + STR(0) + STR(HASH_LEN) +       \
	 STR(SIG_BLOB_LEN))
#define BLOB_MAX BLOB_LEN(SSHSIG_NAMESPACE_MAX)
#define SIGNED_MAX                                                                       \
	(MAGIC_LEN + STR(SSHSIG_NAMESPACE_MAX) + STR(0) + STR(HASH_LEN) +                \
	 STR(crypto_hash_sha512_BYTES))
#define B64_LEN(n) (((n) + 2) / 3 * 4)
/* BEGIN, the base64 in lines of COLUMNS, each with its newline, and
 * END_LINE with its newline. */
#define ARMOR_LEN(b)                                                                     \
	(sizeof(BEGIN) - 1 + B64_LEN(b) + (B64_LEN(b) + COLUMNS - 1) / COLUMNS +        \
	 sizeof(END_LINE) - 1 + 1)

_Static_assert(SSHSIG_PK_LEN == crypto_sign_PUBLICKEYBYTES, "public key size");
_Static_assert(SSHSIG_SK_LEN == crypto_sign_SECRETKEYBYTES, "secret key size");
/* Every signature we write or accept fits the caller's buffers. */
_Static_assert(ARMOR_LEN(BLOB_MAX) + 1 <= SSHSIG_ARMOR_MAX, "armor size");
_Static_assert(sizeof(KEY_TYPE " ") - 1 + B64_LEN(PUB_BLOB_LEN) + 1 <= SSHSIG_PUBKEY_TEXT_MAX,
	       "public key text size");

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

/* The writers below are unchecked: every caller's buffer is sized by
 * the *_LEN macros for a namespace of at most SSHSIG_NAMESPACE_MAX. */
static uint8_t *put_str(uint8_t *p, const void *s, size_t n)
{
	p = put_u32(p, (uint32_t)n);
	if (n)
		memcpy(p, s, n);
	return p + n;
}

static uint8_t *put_pubkey(uint8_t *p, const uint8_t pk[SSHSIG_PK_LEN])
{
	p = put_str(p, KEY_TYPE, KEY_TYPE_LEN);
	return put_str(p, pk, SSHSIG_PK_LEN);
}

/* The hash algorithms of the protocol; sshsig_sign() uses the first. */
static const struct hash_alg {
	const char *name;
	size_t len;
	int (*fn)(unsigned char *out, const unsigned char *in, unsigned long long inlen);
} hash_algs[] = {
	{ "sha512", crypto_hash_sha512_BYTES, crypto_hash_sha512 },
	{ "sha256", crypto_hash_sha256_BYTES, crypto_hash_sha256 },
};

/* What the key signs, H(message) computed here; returns its length. */
static size_t signed_data(uint8_t *out, const char *ns, size_t nslen, const struct hash_alg *a,
			  const uint8_t *msg, size_t len)
{
	uint8_t h[crypto_hash_sha512_BYTES], *p = out;

	a->fn(h, msg, len);
	memcpy(p, MAGIC, MAGIC_LEN);
	p = put_str(p + MAGIC_LEN, ns, nslen);
	p = put_str(p, NULL, 0);
	p = put_str(p, a->name, HASH_LEN);
	p = put_str(p, h, a->len);
	return (size_t)(p - out);
}

int sshsig_pubkey_text(const uint8_t pk[static SSHSIG_PK_LEN], char *out, size_t size)
{
	uint8_t blob[PUB_BLOB_LEN];
	const size_t pre = KEY_TYPE_LEN + 1;

	if (size < pre + B64_LEN(sizeof(blob)) + 1)
		return -ENOSPC;
	put_pubkey(blob, pk);
	memcpy(out, KEY_TYPE " ", pre);
	sodium_bin2base64(out + pre, size - pre, blob, sizeof(blob),
			  sodium_base64_VARIANT_ORIGINAL);
	return (int)(pre + B64_LEN(sizeof(blob)));
}

int sshsig_sign(const uint8_t sk[static SSHSIG_SK_LEN], const char *ns, const uint8_t *msg,
		size_t len, char *out, size_t size)
{
	const struct hash_alg *a = &hash_algs[0];
	uint8_t sig[crypto_sign_BYTES];
	uint8_t tosign[SIGNED_MAX], blob[BLOB_MAX], sigblob[SIG_BLOB_LEN], *p;
	char b64[B64_LEN(BLOB_MAX) + 1], *o = out;
	size_t nslen = strlen(ns), blen, n, i, k;

	if (nslen == 0 || nslen > SSHSIG_NAMESPACE_MAX)
		return -EINVAL;
	blen = BLOB_LEN(nslen);
	if (size < ARMOR_LEN(blen) + 1)
		return -ENOSPC;
	n = signed_data(tosign, ns, nslen, a, msg, len);
	crypto_sign_detached(sig, NULL, tosign, n, sk);

	p = put_str(sigblob, KEY_TYPE, KEY_TYPE_LEN);
	put_str(p, sig, sizeof(sig));
	memcpy(blob, MAGIC, MAGIC_LEN);
	p = put_u32(blob + MAGIC_LEN, VERSION);
	p = put_u32(p, PUB_BLOB_LEN);
	p = put_pubkey(p, sk + crypto_sign_SEEDBYTES);
	p = put_str(p, ns, nslen);
	p = put_str(p, NULL, 0);
	p = put_str(p, a->name, HASH_LEN);
	p = put_str(p, sigblob, sizeof(sigblob));

	sodium_bin2base64(b64, sizeof(b64), blob, blen, sodium_base64_VARIANT_ORIGINAL);
	n = B64_LEN(blen);
	memcpy(o, BEGIN, sizeof(BEGIN) - 1);
	o += sizeof(BEGIN) - 1;
	for (i = 0; i < n; i += k) {
		k = n - i < COLUMNS ? n - i : COLUMNS;
		memcpy(o, b64 + i, k);
		o[k] = '\n';
		o += k + 1;
	}
	memcpy(o, END_LINE "\n", sizeof(END_LINE));
	o += sizeof(END_LINE);
	*o = '\0';
	return (int)(o - out);
}

/* ---- reading ---- */

struct rd {
	const uint8_t *p;
	size_t n;
};

static bool rd_u32(struct rd *r, uint32_t *v)
{
	if (r->n < 4)
		return false;
	*v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 |
	     r->p[3];
	r->p += 4;
	r->n -= 4;
	return true;
}

/* A uint32 length and that many bytes. */
static bool rd_str(struct rd *r, struct rd *s)
{
	uint32_t n;

	if (!rd_u32(r, &n) || n > r->n)
		return false;
	*s = (struct rd){ r->p, n };
	r->p += n;
	r->n -= n;
	return true;
}

static bool rd_is(const struct rd *s, const char *lit)
{
	return s->n == strlen(lit) && memcmp(s->p, lit, s->n) == 0;
}

/* string "ssh-ed25519", string of n bytes, nothing after: the public key
 * and the signature share this shape. */
static bool rd_ed25519(struct rd blob, size_t n, const uint8_t **v)
{
	struct rd type, val;

	if (!rd_str(&blob, &type) || !rd_is(&type, KEY_TYPE) || !rd_str(&blob, &val) ||
	    val.n != n || blob.n != 0)
		return false;
	*v = val.p;
	return true;
}

static bool is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/' || c == '=';
}

/* The blob of an armored signature: BEGIN at byte 0, canonical padded
 * base64 in lines of any length, END, and only white space after it.
 * ssh-keygen ignores what follows END; we refuse anything but white
 * space there, so a signature file carries nothing unsigned. */
static bool dearmor(const char *s, size_t n, uint8_t *blob, size_t cap, size_t *len)
{
	const size_t b = sizeof(BEGIN) - 1, e = sizeof(END) - 1;
	const char *body = s + b, *end, *last;
	size_t i;

	if (n < b || memcmp(s, BEGIN, b) != 0)
		return false;
	end = memmem(body, n - b, END, e);
	if (!end)
		return false;
	for (i = (size_t)(end - s) + e; i < n; i++)
		if (s[i] != '\n' && s[i] != '\r' && s[i] != ' ' && s[i] != '\t')
			return false;
	/* libsodium 1.0.18 takes bytes above 0x7f for digits: check the
	 * alphabet first. */
	for (i = 0; i < (size_t)(end - body); i++)
		if (!is_b64(body[i]) && body[i] != '\n' && body[i] != '\r')
			return false;
	return sodium_base642bin(blob, cap, body, (size_t)(end - body), "\r\n", len, &last,
				 sodium_base64_VARIANT_ORIGINAL) == 0 &&
	       last == end;
}

int sshsig_verify(const char *sig, size_t siglen, const char *ns, const uint8_t *msg, size_t len,
		  uint8_t pk[static SSHSIG_PK_LEN])
{
	uint8_t blob[SSHSIG_ARMOR_MAX], tosign[SIGNED_MAX];
	struct rd r, key, got, reserved, alg, sigblob;
	const struct hash_alg *a = NULL;
	const uint8_t *edpk, *edsig;
	size_t nslen = strlen(ns), blen, i, n;
	uint32_t version;

	if (nslen == 0 || nslen > SSHSIG_NAMESPACE_MAX || siglen > SSHSIG_ARMOR_MAX)
		return -EINVAL;
	if (!dearmor(sig, siglen, blob, sizeof(blob), &blen))
		return -EINVAL;
	r = (struct rd){ blob, blen };
	if (r.n < MAGIC_LEN || memcmp(r.p, MAGIC, MAGIC_LEN) != 0)
		return -EINVAL;
	r.p += MAGIC_LEN;
	r.n -= MAGIC_LEN;
	/* ssh-keygen also takes version 0, which no one ever wrote. */
	if (!rd_u32(&r, &version) || version != VERSION || !rd_str(&r, &key) ||
	    !rd_str(&r, &got) || !rd_str(&r, &reserved) || !rd_str(&r, &alg) ||
	    !rd_str(&r, &sigblob) || r.n != 0)
		return -EINVAL;
	if (!rd_ed25519(key, SSHSIG_PK_LEN, &edpk) ||
	    !rd_ed25519(sigblob, crypto_sign_BYTES, &edsig))
		return -EINVAL;
	/* The protocol forbids an empty namespace; ssh-keygen reads it as
	 * a C string. */
	if (got.n == 0 || memchr(got.p, '\0', got.n))
		return -EINVAL;
	for (i = 0; i < sizeof(hash_algs) / sizeof(hash_algs[0]); i++)
		if (rd_is(&alg, hash_algs[i].name))
			a = &hash_algs[i];
	if (!a)
		return -EINVAL;
	if (got.n != nslen || memcmp(got.p, ns, nslen) != 0)
		return -EBADMSG;
	n = signed_data(tosign, ns, nslen, a, msg, len);
	if (crypto_sign_verify_detached(edsig, tosign, n, edpk) != 0)
		return -EBADMSG;
	memcpy(pk, edpk, SSHSIG_PK_LEN);
	return 0;
}
