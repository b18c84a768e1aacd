/* age v1 (C2SP age spec) with the scrypt passphrase recipient.
 *
 * The reader parses any well-formed header, so that the test vectors with
 * other recipient types classify right, but only unwraps scrypt stanzas.
 * Key material lives in one sodium_malloc()ed struct per call, which
 * sodium_free() wipes on every path out. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/age.h"

#define AGE_MAGIC "age-encryption.org/v1\n"
#define AGE_SCRYPT_LABEL "age-encryption.org/v1/scrypt"
#define AGE_STANZA_PREFIX "-> "
#define AGE_MAC_PREFIX "---"
#define AGE_MAC_LEN 32
#define AGE_B64_COLS 64
#define AGE_B64_LINE_BYTES 48
#define AGE_WRAPPED_LEN (AGE_FILE_KEY_LEN + AGE_TAG_LEN)
#define AGE_ENC_CHUNK_LEN (AGE_CHUNK_LEN + AGE_TAG_LEN)
#define AGE_KEY_LEN 32 /* HKDF and scrypt outputs, ChaCha20 keys */
#define B64_RAW sodium_base64_VARIANT_ORIGINAL_NO_PADDING

/* Plaintext above this would overflow age_sealed_size(); keysets are tiny. */
#define AGE_MAX_PT (SIZE_MAX / 2)

_Static_assert(AGE_KEY_LEN == crypto_aead_chacha20poly1305_ietf_KEYBYTES,
	       "chacha key size");
_Static_assert(AGE_TAG_LEN == crypto_aead_chacha20poly1305_ietf_ABYTES,
	       "poly1305 tag size");
_Static_assert(AGE_KEY_LEN == crypto_auth_hmacsha256_BYTES, "hmac size");

/* Every secret one call handles, in guarded memory. */
struct age_keys {
	uint8_t file_key[AGE_FILE_KEY_LEN];
	uint8_t wrap_key[AGE_KEY_LEN];
	uint8_t mac_key[AGE_KEY_LEN];
	uint8_t payload_key[AGE_KEY_LEN];
	crypto_auth_hmacsha256_state hmac;
};

/* What the header parser learns; only scrypt stanzas are kept. */
struct age_header {
	size_t nstanzas;
	size_t nscrypt;
	size_t mac_end; /* offset just past "---": the MAC covers [0, mac_end) */
	size_t payload; /* offset of the payload nonce */
	uint8_t mac[AGE_MAC_LEN];
	uint8_t salt[AGE_SALT_LEN];
	unsigned long logn;
	uint8_t body[AGE_WRAPPED_LEN];
};

static const uint8_t zero_nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];

/* HKDF-SHA-256 (RFC 5869) with one 32-byte block of output, which is all
 * age ever asks for: PRK = HMAC(salt, ikm), OKM = HMAC(PRK, info || 1). */
static void hkdf(struct age_keys *k, uint8_t out[AGE_KEY_LEN],
		 const uint8_t *salt, size_t saltlen, const uint8_t *ikm,
		 size_t ikmlen, const char *info)
{
	static const uint8_t one = 1;
	uint8_t prk[AGE_KEY_LEN];

	crypto_auth_hmacsha256_init(&k->hmac, salt, saltlen);
	crypto_auth_hmacsha256_update(&k->hmac, ikm, ikmlen);
	crypto_auth_hmacsha256_final(&k->hmac, prk);
	crypto_auth_hmacsha256_init(&k->hmac, prk, sizeof(prk));
	crypto_auth_hmacsha256_update(&k->hmac, (const uint8_t *)info,
				      strlen(info));
	crypto_auth_hmacsha256_update(&k->hmac, &one, 1);
	crypto_auth_hmacsha256_final(&k->hmac, out);
	sodium_memzero(prk, sizeof(prk));
	sodium_memzero(&k->hmac, sizeof(k->hmac));
}

static void header_mac(struct age_keys *k, const uint8_t *hdr, size_t len,
		       uint8_t mac[AGE_MAC_LEN])
{
	static const uint8_t empty_salt[1]; /* libsodium wants non-NULL */

	hkdf(k, k->mac_key, empty_salt, 0, k->file_key, AGE_FILE_KEY_LEN,
	     "header");
	crypto_auth_hmacsha256_init(&k->hmac, k->mac_key, AGE_KEY_LEN);
	crypto_auth_hmacsha256_update(&k->hmac, hdr, len);
	crypto_auth_hmacsha256_final(&k->hmac, mac);
	sodium_memzero(k->mac_key, AGE_KEY_LEN);
	sodium_memzero(&k->hmac, sizeof(k->hmac));
}

static int scrypt_wrap_key(struct age_keys *k, const struct age_pass *pass,
			   const uint8_t salt[AGE_SALT_LEN], unsigned long logn)
{
	uint8_t s[sizeof(AGE_SCRYPT_LABEL) - 1 + AGE_SALT_LEN];

	memcpy(s, AGE_SCRYPT_LABEL, sizeof(AGE_SCRYPT_LABEL) - 1);
	memcpy(s + sizeof(AGE_SCRYPT_LABEL) - 1, salt, AGE_SALT_LEN);
	if (crypto_pwhash_scryptsalsa208sha256_ll(
		    (const uint8_t *)pass->p, pass->len, s, sizeof(s),
		    (uint64_t)1 << logn, 8, 1, k->wrap_key, AGE_KEY_LEN) != 0)
		return -ENOMEM;
	return 0;
}

/* ChaCha20-Poly1305 nonce of chunk i: 11-byte big-endian counter, then the
 * last-chunk flag. */
static void chunk_nonce(uint8_t n[12], uint64_t i, bool last)
{
	int b;

	memset(n, 0, 12);
	for (b = 10; b >= 3; b--, i >>= 8)
		n[b] = i & 0xff;
	n[11] = last;
}

static size_t chunk_count(size_t len)
{
	return len == 0 ? 1 : (len - 1) / AGE_CHUNK_LEN + 1;
}

/* Unpadded base64 length of n bytes. */
#define B64_RAW_LEN(n) (sodium_base64_ENCODED_LEN((n), B64_RAW) - 1)

/* The version line, "-> scrypt <salt> <logN>", the body line, and
 * "--- <MAC>", each ending in LF. */
static size_t header_size(int logn)
{
	return strlen(AGE_MAGIC) + strlen("-> scrypt ") +
	       B64_RAW_LEN(AGE_SALT_LEN) + 1 + snprintf(NULL, 0, "%d", logn) +
	       1 + B64_RAW_LEN(AGE_WRAPPED_LEN) + 1 + strlen("--- ") +
	       B64_RAW_LEN(AGE_MAC_LEN) + 1;
}

size_t age_sealed_size(size_t len, int logn)
{
	return header_size(logn) + AGE_NONCE_LEN + len +
	       chunk_count(len) * AGE_TAG_LEN;
}

static size_t put_b64(uint8_t *dst, const uint8_t *bin, size_t len)
{
	char tmp[sodium_base64_ENCODED_LEN(AGE_MAC_LEN, B64_RAW)];

	sodium_bin2base64(tmp, sizeof(tmp), bin, len, B64_RAW);
	memcpy(dst, tmp, strlen(tmp));
	return strlen(tmp);
}

static void put(uint8_t *out, size_t *pos, const void *s, size_t n)
{
	memcpy(out + *pos, s, n);
	*pos += n;
}

/* Writes the header into out and returns its length. */
static size_t seal_header(struct age_keys *k, uint8_t *out,
			  const uint8_t salt[AGE_SALT_LEN], int logn,
			  const uint8_t body[AGE_WRAPPED_LEN])
{
	uint8_t mac[AGE_MAC_LEN];
	char num[12];
	size_t pos = 0;

	snprintf(num, sizeof(num), "%d", logn);
	put(out, &pos, AGE_MAGIC "-> scrypt ", strlen(AGE_MAGIC) + 10);
	pos += put_b64(out + pos, salt, AGE_SALT_LEN);
	put(out, &pos, " ", 1);
	put(out, &pos, num, strlen(num));
	put(out, &pos, "\n", 1);
	pos += put_b64(out + pos, body, AGE_WRAPPED_LEN);
	put(out, &pos, "\n" AGE_MAC_PREFIX, 4);
	header_mac(k, out, pos, mac);
	put(out, &pos, " ", 1);
	pos += put_b64(out + pos, mac, AGE_MAC_LEN);
	put(out, &pos, "\n", 1);
	return pos;
}

static void seal_payload(struct age_keys *k, const uint8_t *pt, size_t len,
			 uint8_t *out)
{
	size_t i, n, nchunks = chunk_count(len);
	uint8_t nonce[12];

	randombytes_buf(out, AGE_NONCE_LEN);
	hkdf(k, k->payload_key, out, AGE_NONCE_LEN, k->file_key,
	     AGE_FILE_KEY_LEN, "payload");
	out += AGE_NONCE_LEN;
	for (i = 0; i < nchunks; i++, pt += n, len -= n) {
		n = len < AGE_CHUNK_LEN ? len : AGE_CHUNK_LEN;
		chunk_nonce(nonce, i, i == nchunks - 1);
		crypto_aead_chacha20poly1305_ietf_encrypt(
			out, NULL, pt, n, NULL, 0, NULL, nonce,
			k->payload_key);
		out += n + AGE_TAG_LEN;
	}
}

int age_seal(const uint8_t *pt, size_t len, const struct age_pass *pass,
	     int logn, uint8_t **out, size_t *outlen)
{
	uint8_t salt[AGE_SALT_LEN], body[AGE_WRAPPED_LEN];
	struct age_keys *k = NULL;
	uint8_t *buf = NULL;
	size_t size, hlen;
	int ret;

	if (logn < AGE_LOGN_MIN || logn > AGE_LOGN_MAX || !pass ||
	    (!pt && len > 0))
		return -EINVAL;
	if (len > AGE_MAX_PT)
		return -EFBIG;
	size = age_sealed_size(len, logn);
	buf = malloc(size);
	k = sodium_malloc(sizeof(*k));
	if (!buf || !k) {
		ret = -ENOMEM;
		goto out;
	}

	/* The spec's MUSTs: a fresh file key, salt and nonce per file. */
	randombytes_buf(k->file_key, AGE_FILE_KEY_LEN);
	randombytes_buf(salt, sizeof(salt));
	ret = scrypt_wrap_key(k, pass, salt, logn);
	if (ret < 0)
		goto out;
	crypto_aead_chacha20poly1305_ietf_encrypt(body, NULL, k->file_key,
						  AGE_FILE_KEY_LEN, NULL, 0,
						  NULL, zero_nonce, k->wrap_key);
	hlen = seal_header(k, buf, salt, logn, body);
	seal_payload(k, pt, len, buf + hlen);

	*out = buf;
	*outlen = size;
	buf = NULL;
	ret = 0;
out:
	free(buf);
	sodium_free(k);
	return ret;
}

/* ---- header parsing ---- */

/* Unpadded base64 as the spec wants it: canonical, no '=', nothing else.
 * Returns the decoded length or -EINVAL (also when it exceeds cap). */
static long b64_raw_decode(uint8_t *dst, size_t cap, const uint8_t *src,
			   size_t n)
{
	uint8_t check[AGE_B64_COLS + 1];
	const char *end;
	size_t len;
	char re[AGE_B64_COLS + 1];

	if (n == 0)
		return 0;
	if (n > AGE_B64_COLS || n % 4 == 1)
		return -EINVAL;
	if (sodium_base642bin(check, sizeof(check), (const char *)src, n,
			      NULL, &len, &end, B64_RAW) != 0 ||
	    end != (const char *)src + n || len > cap)
		return -EINVAL;
	/* Canonical means the unused low bits of the last digit are zero,
	 * i.e. re-encoding gives back the very same text. */
	sodium_bin2base64(re, sizeof(re), check, len, B64_RAW);
	if (strlen(re) != n || memcmp(re, src, n) != 0)
		return -EINVAL;
	memcpy(dst, check, len);
	sodium_memzero(check, sizeof(check));
	return (long)len;
}

/* The line at *pos, without its LF; -EINVAL if no LF ends it. */
static int get_line(const uint8_t *in, size_t len, size_t *pos,
		    const uint8_t **line, size_t *n)
{
	const uint8_t *nl = memchr(in + *pos, '\n', len - *pos);

	if (!nl)
		return -EINVAL;
	*line = in + *pos;
	*n = (size_t)(nl - *line);
	*pos += *n + 1;
	return 0;
}

/* Splits "a b c" into at most max arguments of 1*VCHAR each. Returns the
 * argument count or -EINVAL. */
static int split_args(const uint8_t *s, size_t n, const uint8_t **arg,
		      size_t *arglen, int max)
{
	size_t i, start = 0;
	int nargs = 0;

	for (i = 0; i <= n; i++) {
		if (i < n && s[i] != ' ') {
			if (s[i] < 0x21 || s[i] > 0x7e)
				return -EINVAL;
			continue;
		}
		if (i == start)
			return -EINVAL; /* empty argument */
		if (nargs < max) {
			arg[nargs] = s + start;
			arglen[nargs] = i - start;
		}
		nargs++;
		start = i + 1;
	}
	return nargs;
}

/* logN is "^[1-9][0-9]*$". Values above AGE_LOGN_MAX parse here and are
 * refused by the caller; more than 9 digits is an overflow. */
static int parse_logn(const uint8_t *s, size_t n, unsigned long *logn)
{
	unsigned long v = 0;
	size_t i;

	if (n == 0 || n > 9 || s[0] < '1' || s[0] > '9')
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*logn = v;
	return 0;
}

static bool arg_is(const uint8_t *a, size_t n, const char *s)
{
	return n == strlen(s) && memcmp(a, s, n) == 0;
}

/* Reads a stanza body: full 64-column lines, then one shorter line. Keeps
 * up to cap bytes in dst and returns the whole decoded length. */
static long parse_body(const uint8_t *in, size_t len, size_t *pos,
		       uint8_t *dst, size_t cap)
{
	uint8_t bin[AGE_B64_LINE_BYTES];
	const uint8_t *line;
	size_t n, total = 0;
	long got;

	do {
		if (get_line(in, len, pos, &line, &n) < 0)
			return -EINVAL;
		got = b64_raw_decode(bin, sizeof(bin), line, n);
		if (got < 0)
			return -EINVAL;
		if (total < cap)
			memcpy(dst + total, bin,
			       (size_t)got < cap - total ? (size_t)got
							 : cap - total);
		total += (size_t)got;
	} while (n == AGE_B64_COLS);
	return (long)total;
}

static int parse_stanza(const uint8_t *in, size_t len, size_t *pos,
			const uint8_t *line, size_t n, struct age_header *h)
{
	const uint8_t *arg[4];
	size_t arglen[4];
	uint8_t body[AGE_WRAPPED_LEN + 1];
	int nargs;
	long blen;

	nargs = split_args(line, n, arg, arglen, 4);
	if (nargs < 1)
		return -EINVAL;
	blen = parse_body(in, len, pos, body, sizeof(body));
	if (blen < 0)
		return -EINVAL;
	h->nstanzas++;
	if (!arg_is(arg[0], arglen[0], "scrypt"))
		return 0;

	/* The spec's checks for scrypt, all before any key work. */
	h->nscrypt++;
	if (nargs != 3 ||
	    b64_raw_decode(h->salt, sizeof(h->salt), arg[1], arglen[1]) !=
		    AGE_SALT_LEN ||
	    parse_logn(arg[2], arglen[2], &h->logn) < 0 ||
	    blen != AGE_WRAPPED_LEN)
		return -EINVAL;
	memcpy(h->body, body, AGE_WRAPPED_LEN);
	return 0;
}

/* "--- " and the base64 MAC, nothing else. */
static int parse_mac(const uint8_t *line, size_t n, struct age_header *h)
{
	if (n != 4 + B64_RAW_LEN(AGE_MAC_LEN) || line[3] != ' ' ||
	    b64_raw_decode(h->mac, sizeof(h->mac), line + 4,
			   B64_RAW_LEN(AGE_MAC_LEN)) != AGE_MAC_LEN)
		return -EINVAL;
	return 0;
}

static int parse_header(const uint8_t *in, size_t len, struct age_header *h)
{
	const uint8_t *line;
	size_t pos = strlen(AGE_MAGIC), n;
	int ret;

	memset(h, 0, sizeof(*h));
	if (!in || len < pos || memcmp(in, AGE_MAGIC, pos) != 0)
		return -EINVAL;
	for (;;) {
		ret = get_line(in, len, &pos, &line, &n);
		if (ret < 0)
			return ret;
		if (n >= 3 && memcmp(line, AGE_MAC_PREFIX, 3) == 0)
			break;
		if (n < 3 || memcmp(line, AGE_STANZA_PREFIX, 3) != 0)
			return -EINVAL;
		ret = parse_stanza(in, len, &pos, line + 3, n - 3, h);
		if (ret < 0)
			return ret;
	}
	ret = parse_mac(line, n, h);
	if (ret < 0)
		return ret;
	/* At least one stanza, and scrypt only ever alone. */
	if (h->nstanzas == 0 || (h->nscrypt > 0 && h->nstanzas > 1))
		return -EINVAL;
	h->mac_end = (size_t)(line - in) + 3;
	h->payload = pos;
	return 0;
}

/* ---- opening ---- */

/* The STREAM payload: every chunk full but the last, which is non-empty
 * unless it is the only one, and nothing after it. The chunk layout follows
 * from the length alone, so the plaintext size is known up front. */
static int open_payload(struct age_keys *k, const uint8_t *in, size_t len,
			uint8_t **pt, size_t *ptlen)
{
	size_t rest = len - AGE_NONCE_LEN, tail = rest % AGE_ENC_CHUNK_LEN;
	size_t i, nchunks, total, n;
	uint8_t nonce[12], *buf;
	int ret;

	if (rest == 0 || (tail > 0 && tail < AGE_TAG_LEN))
		return -EBADMSG;
	nchunks = rest / AGE_ENC_CHUNK_LEN + (tail > 0);
	if (nchunks > 1 && tail == AGE_TAG_LEN)
		return -EBADMSG; /* empty final chunk after data */
	total = rest - nchunks * AGE_TAG_LEN;

	hkdf(k, k->payload_key, in, AGE_NONCE_LEN, k->file_key,
	     AGE_FILE_KEY_LEN, "payload");
	buf = sodium_malloc(total > 0 ? total : 1);
	if (!buf)
		return -ENOMEM;
	in += AGE_NONCE_LEN;
	for (i = 0; i < nchunks; i++, in += n) {
		n = rest - i * AGE_ENC_CHUNK_LEN;
		if (n > AGE_ENC_CHUNK_LEN)
			n = AGE_ENC_CHUNK_LEN;
		chunk_nonce(nonce, i, i == nchunks - 1);
		if (crypto_aead_chacha20poly1305_ietf_decrypt(
			    buf + i * AGE_CHUNK_LEN, NULL, NULL, in, n, NULL,
			    0, nonce, k->payload_key) != 0) {
			ret = -EBADMSG;
			goto out;
		}
	}
	*pt = buf;
	*ptlen = total;
	buf = NULL;
	ret = 0;
out:
	sodium_free(buf); /* on failure, wipes what was already opened */
	return ret;
}

/* With k->file_key set: check the header MAC, then open the payload. */
static int open_with_key(struct age_keys *k, const uint8_t *in, size_t len,
			 const struct age_header *h, uint8_t **pt,
			 size_t *ptlen)
{
	uint8_t mac[AGE_MAC_LEN];

	header_mac(k, in, h->mac_end, mac);
	if (crypto_verify_32(mac, h->mac) != 0)
		return -EBADMSG;
	/* A missing or short nonce is a malformed file, as in age. */
	if (len - h->payload < AGE_NONCE_LEN)
		return -EINVAL;
	return open_payload(k, in + h->payload, len - h->payload, pt, ptlen);
}

static int check_scrypt(const struct age_header *h)
{
	/* Other recipient types only: nothing a passphrase can open. */
	if (h->nscrypt == 0)
		return -EKEYREJECTED;
	/* Refused before any work: a hostile logN is a memory/CPU bomb. */
	if (h->logn > AGE_LOGN_MAX)
		return -EKEYREJECTED;
	return 0;
}

/* A header keyfs can open with a passphrase: parsed, scrypt-checked. */
static int parse_scrypt_header(const uint8_t *in, size_t len, struct age_header *h)
{
	int ret;

	ret = parse_header(in, len, h);
	return ret < 0 ? ret : check_scrypt(h);
}

int age_peek_logn(const uint8_t *in, size_t len)
{
	struct age_header h;
	int ret;

	ret = parse_scrypt_header(in, len, &h);
	return ret < 0 ? ret : (int)h.logn;
}

/* Tries each passphrase on the stanza; 0 with k->file_key set on a fit. */
static int unwrap(struct age_keys *k, const struct age_header *h,
		  const struct age_pass *pass, size_t npass, size_t *which)
{
	size_t i;
	int ret;

	for (i = 0; i < npass; i++) {
		ret = scrypt_wrap_key(k, &pass[i], h->salt, h->logn);
		if (ret < 0)
			return ret;
		ret = crypto_aead_chacha20poly1305_ietf_decrypt(
			k->file_key, NULL, NULL, h->body, AGE_WRAPPED_LEN,
			NULL, 0, zero_nonce, k->wrap_key);
		sodium_memzero(k->wrap_key, AGE_KEY_LEN);
		if (ret == 0) {
			if (which)
				*which = i;
			return 0;
		}
	}
	return -EKEYREJECTED;
}

/* Opens a file with the file key given (key) or unwrapped from its
 * scrypt stanza with one of the passphrases. */
static int unseal(const uint8_t *in, size_t len, const uint8_t *key, const struct age_pass *pass,
		  size_t npass, uint8_t **pt, size_t *ptlen, size_t *which)
{
	struct age_keys *k = NULL;
	struct age_header h;
	int ret;

	ret = key ? parse_header(in, len, &h) : parse_scrypt_header(in, len, &h);
	if (ret < 0)
		goto out;
	k = sodium_malloc(sizeof(*k));
	if (!k) {
		ret = -ENOMEM;
		goto out;
	}
	if (key)
		memcpy(k->file_key, key, AGE_FILE_KEY_LEN);
	else
		ret = unwrap(k, &h, pass, npass, which);
	if (ret < 0)
		goto out;
	ret = open_with_key(k, in, len, &h, pt, ptlen);
out:
	sodium_free(k);
	return ret;
}

int age_unseal(const uint8_t *in, size_t len, const struct age_pass *pass,
	       size_t npass, uint8_t **pt, size_t *ptlen, size_t *which)
{
	return unseal(in, len, NULL, pass, npass, pt, ptlen, which);
}

int age_unseal_file_key(const uint8_t *in, size_t len,
			const uint8_t key[static AGE_FILE_KEY_LEN],
			uint8_t **pt, size_t *ptlen)
{
	return unseal(in, len, key, NULL, 0, pt, ptlen, NULL);
}
