/* The file key wrap every recipient type shares: ChaCha20-Poly1305 of
 * the 16-byte file key under a key used once, so a zero nonce. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/age_recipient.h"

_Static_assert(AGE_WRAP_KEY_LEN == crypto_aead_chacha20poly1305_ietf_KEYBYTES,
	       "chacha key size");

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
