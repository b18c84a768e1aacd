/* The age v1 STREAM payload: nonce, payload key, 64 KiB ChaCha20-Poly1305
 * chunks with the last-chunk flag in their nonces. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/secmem.h"

#include "age_hkdf.h"
#include "age_stream.h"

#define PAYLOAD_LABEL "payload"
#define ENC_CHUNK_LEN (AGE_CHUNK_LEN + AGE_TAG_LEN)
#define CHUNK_NONCE_LEN crypto_aead_chacha20poly1305_ietf_NPUBBYTES

_Static_assert(AGE_HKDF_LEN == crypto_aead_chacha20poly1305_ietf_KEYBYTES,
	       "chacha key size");
_Static_assert(AGE_TAG_LEN == crypto_aead_chacha20poly1305_ietf_ABYTES,
	       "poly1305 tag size");

/* Chunk i's nonce: an 11-byte big-endian counter, then the last flag. */
static void chunk_nonce(uint8_t n[CHUNK_NONCE_LEN], uint64_t i, bool last)
{
	int b;

	memset(n, 0, CHUNK_NONCE_LEN);
	for (b = 10; b >= 3; b--, i >>= 8)
		n[b] = i & 0xff;
	n[11] = last;
}

/* An empty plaintext is still one (empty, final) chunk. */
static size_t chunk_count(size_t len)
{
	return len == 0 ? 1 : (len - 1) / AGE_CHUNK_LEN + 1;
}

size_t age_stream_size(size_t len)
{
	return AGE_NONCE_LEN + len + chunk_count(len) * AGE_TAG_LEN;
}

/* The payload key, in guarded memory the caller frees. */
static int payload_key(const uint8_t key[AGE_FILE_KEY_LEN],
		       const uint8_t nonce[AGE_NONCE_LEN], uint8_t **pk)
{
	int ret;

	*pk = secmem_alloc(AGE_HKDF_LEN);
	if (!*pk)
		return -ENOMEM;
	ret = age_hkdf(*pk, AGE_HKDF_LEN, nonce, AGE_NONCE_LEN, key,
		       AGE_FILE_KEY_LEN, (const uint8_t *)PAYLOAD_LABEL,
		       strlen(PAYLOAD_LABEL));
	if (ret < 0) {
		secmem_free(*pk);
		*pk = NULL;
	}
	return ret;
}

int age_stream_seal(const uint8_t key[static AGE_FILE_KEY_LEN],
		    const uint8_t *pt, size_t len, uint8_t *out)
{
	size_t i, n, nchunks = chunk_count(len);
	uint8_t nonce[CHUNK_NONCE_LEN], *pk;
	int ret;

	/* The spec's MUST: a fresh nonce per file. */
	randombytes_buf(out, AGE_NONCE_LEN);
	ret = payload_key(key, out, &pk);
	if (ret < 0)
		return ret;
	out += AGE_NONCE_LEN;
	for (i = 0; i < nchunks; i++, pt += n, len -= n) {
		n = len < AGE_CHUNK_LEN ? len : AGE_CHUNK_LEN;
		chunk_nonce(nonce, i, i == nchunks - 1);
		crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, pt, n, NULL,
							  0, NULL, nonce, pk);
		out += n + AGE_TAG_LEN;
	}
	secmem_free(pk);
	return 0;
}

/* Every chunk full but the last, which is non-empty unless it is the only
 * one, and nothing after it: the layout follows from the length alone, so
 * the plaintext size is known before any decryption. */
static int layout(size_t rest, size_t *nchunks, size_t *total)
{
	size_t tail = rest % ENC_CHUNK_LEN;

	if (rest == 0 || (tail > 0 && tail < AGE_TAG_LEN))
		return -EBADMSG;
	*nchunks = rest / ENC_CHUNK_LEN + (tail > 0);
	if (*nchunks > 1 && tail == AGE_TAG_LEN)
		return -EBADMSG; /* empty final chunk after data */
	*total = rest - *nchunks * AGE_TAG_LEN;
	return 0;
}

int age_stream_open(const uint8_t key[static AGE_FILE_KEY_LEN],
		    const uint8_t *in, size_t len, uint8_t **pt,
		    size_t *ptlen)
{
	uint8_t nonce[CHUNK_NONCE_LEN], *pk = NULL, *buf = NULL;
	size_t i, n, rest, nchunks, total;
	int ret;

	if (len < AGE_NONCE_LEN)
		return -EINVAL;
	rest = len - AGE_NONCE_LEN;
	ret = layout(rest, &nchunks, &total);
	if (ret < 0)
		return ret;
	ret = payload_key(key, in, &pk);
	if (ret < 0)
		goto out;
	buf = sodium_malloc(total > 0 ? total : 1);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	in += AGE_NONCE_LEN;
	for (i = 0; i < nchunks; i++, in += n) {
		n = rest - i * ENC_CHUNK_LEN;
		if (n > ENC_CHUNK_LEN)
			n = ENC_CHUNK_LEN;
		chunk_nonce(nonce, i, i == nchunks - 1);
		if (crypto_aead_chacha20poly1305_ietf_decrypt(
			    buf + i * AGE_CHUNK_LEN, NULL, NULL, in, n, NULL, 0,
			    nonce, pk) != 0) {
			ret = -EBADMSG;
			goto out;
		}
	}
	*pt = buf;
	*ptlen = total;
	buf = NULL;
out:
	sodium_free(buf); /* on failure, wipes what was already opened */
	secmem_free(pk);
	return ret;
}
