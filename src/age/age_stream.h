/* The age v1 payload (C2SP age spec, STREAM): a 16-byte nonce, then the
 * plaintext in 64 KiB ChaCha20-Poly1305 chunks under
 * HKDF-SHA-256(ikm = file key, salt = nonce, info = "payload"), each
 * chunk's nonce an 11-byte big-endian counter and a last-chunk flag.
 *
 * Errors, as negative errno:
 *   -EINVAL   no room for the nonce: a malformed file, as age calls it
 *   -EBADMSG  a chunk fails authentication, the stream is cut short, or
 *             anything follows the last chunk
 *   -ENOMEM   allocation failed
 */
#ifndef KEYFS_AGE_STREAM_H
#define KEYFS_AGE_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "keyfs/age.h"

/* Bytes the payload of len plaintext bytes takes. */
size_t age_stream_size(size_t len);

/* Encrypts pt into out, which has room for age_stream_size(len) bytes,
 * under a fresh random nonce. */
int age_stream_seal(const uint8_t key[static AGE_FILE_KEY_LEN],
		    const uint8_t *pt, size_t len, uint8_t *out);

/* Decrypts the payload in[0, len) whole. *pt is sodium_malloc()ed: release
 * it with sodium_free(). */
int age_stream_open(const uint8_t key[static AGE_FILE_KEY_LEN],
		    const uint8_t *in, size_t len, uint8_t **pt,
		    size_t *ptlen);

#endif
