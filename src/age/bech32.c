/* Bech32 (BIP 173): the checksum is a BCH code over GF(32) whose
 * remainder, for a valid string, is the constant 1 (Bech32m's is another
 * constant; age uses plain Bech32). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "bech32.h"

static const char alphabet[32] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

static uint32_t polymod_step(uint32_t chk, uint8_t v)
{
	static const uint32_t gen[5] = { 0x3b6a57b2, 0x26508e6d, 0x1ea119fa,
					 0x3d4233dd, 0x2a1462b3 };
	uint32_t top = chk >> 25;
	int i;

	chk = ((chk & 0x1ffffff) << 5) ^ v;
	for (i = 0; i < 5; i++)
		if ((top >> i) & 1)
			chk ^= gen[i];
	return chk;
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static char upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

/* The checksum's input starts with the HRP expanded: the high bits of
 * each character, a zero, the low bits. Lowercase throughout. */
static uint32_t polymod_hrp(const char *hrp, size_t h)
{
	uint32_t chk = 1;
	size_t i;

	for (i = 0; i < h; i++)
		chk = polymod_step(chk, (uint8_t)lower(hrp[i]) >> 5);
	chk = polymod_step(chk, 0);
	for (i = 0; i < h; i++)
		chk = polymod_step(chk, (uint8_t)lower(hrp[i]) & 31);
	return chk;
}

/* 0 if every character is printable ASCII (33..126) and the letters are
 * of one case; *up tells which. */
static int check_chars(const char *s, size_t len, bool *up)
{
	bool lo = false, hi = false;
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] < 33 || s[i] > 126)
			return -EINVAL;
		lo |= s[i] >= 'a' && s[i] <= 'z';
		hi |= s[i] >= 'A' && s[i] <= 'Z';
	}
	if (lo && hi)
		return -EINVAL;
	*up = hi;
	return 0;
}

long bech32_encode_words(char *out, size_t cap, const char *hrp,
			 const uint8_t *words, size_t n)
{
	size_t h = hrp ? strlen(hrp) : 0, len = h + 1 + n + BECH32_CHECKSUM_LEN;
	uint32_t chk;
	size_t i;
	bool up;

	if (h == 0 || check_chars(hrp, h, &up) < 0)
		return -EINVAL;
	if (len > BECH32_MAX_LEN || len >= cap)
		return len > BECH32_MAX_LEN ? -EINVAL : -ENOSPC;
	chk = polymod_hrp(hrp, h);
	for (i = 0; i < h; i++)
		out[i] = lower(hrp[i]);
	out[h] = '1';
	for (i = 0; i < n; i++) {
		if (words[i] >= 32)
			return -EINVAL;
		chk = polymod_step(chk, words[i]);
		out[h + 1 + i] = alphabet[words[i]];
	}
	for (i = 0; i < BECH32_CHECKSUM_LEN; i++)
		chk = polymod_step(chk, 0);
	chk ^= 1;
	for (i = 0; i < BECH32_CHECKSUM_LEN; i++)
		out[h + 1 + n + i] = alphabet[(chk >> (5 * (5 - i))) & 31];
	out[len] = '\0';
	if (up)
		for (i = 0; i < len; i++)
			out[i] = upper(out[i]);
	return (long)len;
}

long bech32_encode(char *out, size_t cap, const char *hrp,
		   const uint8_t *data, size_t n)
{
	uint8_t words[BECH32_MAX_LEN];
	uint32_t acc = 0;
	size_t i, w = 0;
	int bits = 0;
	long ret;

	if (n > (BECH32_MAX_LEN * 5) / 8)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		acc = (acc << 8) | data[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			words[w++] = (acc >> bits) & 31;
		}
	}
	if (bits > 0)
		words[w++] = (acc << (5 - bits)) & 31;
	ret = bech32_encode_words(out, cap, hrp, words, w);
	/* The data may be a secret key. */
	sodium_memzero(words, sizeof(words));
	sodium_memzero(&acc, sizeof(acc));
	return ret;
}

long bech32_decode_words(char *hrp, size_t hrpcap, uint8_t *words,
			 size_t wordcap, const char *s, size_t len)
{
	const char *sep = NULL, *p;
	size_t h, n, i;
	uint32_t chk;
	bool up;

	if (len > BECH32_MAX_LEN || check_chars(s, len, &up) < 0)
		return -EINVAL;
	/* The last "1": the HRP may hold some, the alphabet has none. */
	for (i = len; i > 0; i--)
		if (s[i - 1] == '1') {
			sep = s + i - 1;
			break;
		}
	if (!sep || sep == s || (size_t)(s + len - sep - 1) < BECH32_CHECKSUM_LEN)
		return -EINVAL;
	h = (size_t)(sep - s);
	n = len - h - 1 - BECH32_CHECKSUM_LEN;
	if (h >= hrpcap)
		return -ENOSPC;
	if (n > wordcap)
		return -ENOSPC;
	chk = polymod_hrp(s, h);
	for (i = 0; i < n + BECH32_CHECKSUM_LEN; i++) {
		p = memchr(alphabet, lower(sep[1 + i]), sizeof(alphabet));
		if (!p)
			return -EINVAL;
		chk = polymod_step(chk, (uint8_t)(p - alphabet));
		if (i < n)
			words[i] = (uint8_t)(p - alphabet);
	}
	if (chk != 1)
		return -EINVAL;
	for (i = 0; i < h; i++)
		hrp[i] = lower(s[i]);
	hrp[h] = '\0';
	return (long)n;
}

long bech32_decode(char *hrp, size_t hrpcap, uint8_t *data, size_t cap,
		   const char *s, size_t len)
{
	uint8_t words[BECH32_MAX_LEN];
	uint32_t acc = 0;
	size_t i, n = 0;
	long nw;
	int bits = 0;

	nw = bech32_decode_words(hrp, hrpcap, words, sizeof(words), s, len);
	for (i = 0; nw > 0 && i < (size_t)nw; i++) {
		acc = ((acc << 5) | words[i]) & 0xfff;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			if (n == cap) {
				nw = -ENOSPC;
				break;
			}
			data[n++] = (uint8_t)(acc >> bits);
		}
	}
	/* What is left is padding: less than a word, and zeros. */
	if (nw >= 0 && (bits >= 5 || (acc & ((1u << bits) - 1)) != 0))
		nw = -EINVAL;
	/* The data may be a secret key. */
	sodium_memzero(words, sizeof(words));
	sodium_memzero(&acc, sizeof(acc));
	return nw < 0 ? nw : (long)n;
}
