/* Bech32 (BIP 173; not Bech32m), the encoding of age's "age1..."
 * recipients and "AGE-SECRET-KEY-1..." identities: a human-readable part
 * (HRP), the separator "1", 5-bit words in a 32-letter alphabet and a
 * 6-word checksum over both.
 *
 * A string is all lowercase or all uppercase, at most BECH32_MAX_LEN
 * characters. The HRP is compared and checksummed in lowercase.
 *
 * Errors: -EINVAL for a malformed string (mixed case, a character out of
 * range or not in the alphabet, no separator, an empty HRP, a bad
 * checksum, bad padding), -ENOSPC when the output does not fit.
 */
#ifndef KEYFS_BECH32_H
#define KEYFS_BECH32_H

#include <stddef.h>
#include <stdint.h>

#define BECH32_MAX_LEN 90
#define BECH32_CHECKSUM_LEN 6
/* Characters of the encoding of n data bytes under an HRP of h chars. */
#define BECH32_LEN(h, n) ((h) + 1 + ((n) * 8 + 4) / 5 + BECH32_CHECKSUM_LEN)

/* Encodes n 5-bit words (each below 32) under hrp, whose case (all lower
 * or all upper) the output takes. Writes a NUL-terminated string to out,
 * of cap bytes; returns its length. */
long bech32_encode_words(char *out, size_t cap, const char *hrp,
			 const uint8_t *words, size_t n);

/* Encodes n bytes: 8-bit groups to 5-bit words, zero-padded. */
long bech32_encode(char *out, size_t cap, const char *hrp,
		   const uint8_t *data, size_t n);

/* Decodes s[0, len) into the lowercase HRP (NUL-terminated, hrpcap bytes
 * with the NUL) and its 5-bit words (wordcap of them); returns the number
 * of words, the checksum left out. */
long bech32_decode_words(char *hrp, size_t hrpcap, uint8_t *words,
			 size_t wordcap, const char *s, size_t len);

/* Decodes s[0, len) into the lowercase HRP and data bytes (cap of them);
 * returns the number of bytes. The padding must be at most 4 bits, all
 * zero. */
long bech32_decode(char *hrp, size_t hrpcap, uint8_t *data, size_t cap,
		   const char *s, size_t len);

#endif
