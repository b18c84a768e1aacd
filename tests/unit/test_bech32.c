/* Unit tests of Bech32: the BIP 173 test vectors, Bech32m strings
 * refused, padding rules, and age's two uses of it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bech32.h"
#include "tap.h"

static long decode(const char *s, char *hrp, size_t hrpcap, uint8_t *data,
		   size_t cap)
{
	return bech32_decode(hrp, hrpcap, data, cap, s, strlen(s));
}

/* BIP 173's valid strings: they decode, and re-encode to themselves
 * (in lowercase, or uppercase with an uppercase HRP). */
static void test_valid(void)
{
	static const char *const valid[] = {
		"A12UEL5L",
		"a12uel5l",
		"an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
		"abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
		"11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j",
		"split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
		"?1ezyfcl",
	};
	uint8_t words[BECH32_MAX_LEN];
	char hrp[BECH32_MAX_LEN], out[BECH32_MAX_LEN + 1];
	size_t i;
	long n, m;

	for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		n = bech32_decode_words(hrp, sizeof(hrp), words, sizeof(words),
					valid[i], strlen(valid[i]));
		tap_ok(n >= 0, "valid %s decodes", valid[i]);
		if (n < 0)
			continue;
		if (valid[i][0] >= 'A' && valid[i][0] <= 'Z')
			for (m = 0; hrp[m]; m++)
				if (hrp[m] >= 'a' && hrp[m] <= 'z')
					hrp[m] = (char)(hrp[m] - 'a' + 'A');
		m = bech32_encode_words(out, sizeof(out), hrp, words,
					(size_t)n);
		tap_ok(m == (long)strlen(valid[i]) && strcmp(out, valid[i]) == 0,
		       "valid %s re-encodes (%s)", valid[i], out);
	}
}

static void test_invalid(void)
{
	static const char *const invalid[] = {
		"\x20" "1nwldj5", /* HRP character out of range */
		"\x7f" "1axkwrx",
		"\x80" "1eym55h",
		/* overall length above 90 */
		"an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx",
		"pzry9x0s0muk", /* no separator */
		"1pzry9x0s0muk", /* empty HRP */
		"x1b4n0q5v", /* invalid data character */
		"li1dgmt3", /* checksum too short */
		"de1lg7wt\xff", /* invalid character in the checksum */
		"A1G7SGD8", /* checksum over the uppercase HRP */
		"10a06t8", /* empty HRP */
		"1qzzfhee", /* empty HRP */
		"A1LQFN3A", /* valid Bech32m, not Bech32 */
		"a1lqfn3a",
		"abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx", /* Bech32m */
		"a12UEL5L", /* mixed case */
		"A12uel5l",
		"abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxx", /* checksum */
		"abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxwq",
	};
	uint8_t words[BECH32_MAX_LEN];
	char hrp[BECH32_MAX_LEN + 1];
	size_t i;

	for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		TAP_EQ_INT(bech32_decode_words(hrp, sizeof(hrp), words,
					       sizeof(words), invalid[i],
					       strlen(invalid[i])),
			   -EINVAL, "invalid string %zu refused", i);
}

/* The 8-bit data: BIP 173's example bytes, and the padding rules: at
 * most 4 bits, all zero. */
static void test_bytes(void)
{
	static const uint8_t abcdef[] = { 0x00, 0x44, 0x32, 0x14, 0xc7, 0x42,
					  0x54, 0xb6, 0x35, 0xcf, 0x84, 0x65,
					  0x3a, 0x56, 0xd7, 0xc6, 0x75, 0xbe,
					  0x77, 0xdf };
	uint8_t data[64], words[4];
	char hrp[16], s[BECH32_MAX_LEN + 1];
	long n;

	n = decode("abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw", hrp,
		   sizeof(hrp), data, sizeof(data));
	tap_ok(n == sizeof(abcdef) && memcmp(data, abcdef, n) == 0 &&
		       strcmp(hrp, "abcdef") == 0,
	       "abcdef example decodes to its bytes");
	n = decode("11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j",
		   hrp, sizeof(hrp), data, sizeof(data));
	TAP_EQ_INT(n, 51, "82 zero words are 51 bytes and 2 bits of padding");
	TAP_EQ_INT(decode("abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw", hrp,
			  sizeof(hrp), data, 19),
		   -ENOSPC, "data larger than the buffer");
	TAP_EQ_INT(decode("abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw", hrp,
			  6, data, sizeof(data)),
		   -ENOSPC, "HRP larger than its buffer");

	/* 0xff: two words and 2 zero bits. */
	words[0] = 31;
	words[1] = 28;
	bech32_encode_words(s, sizeof(s), "x", words, 2);
	n = decode(s, hrp, sizeof(hrp), data, sizeof(data));
	tap_ok(n == 1 && data[0] == 0xff, "0xff with 2 zero padding bits");
	words[1] = 29;
	bech32_encode_words(s, sizeof(s), "x", words, 2);
	TAP_EQ_INT(decode(s, hrp, sizeof(hrp), data, sizeof(data)), -EINVAL,
		   "non-zero padding refused");
	words[1] = 28;
	words[2] = 0;
	bech32_encode_words(s, sizeof(s), "x", words, 3);
	TAP_EQ_INT(decode(s, hrp, sizeof(hrp), data, sizeof(data)), -EINVAL,
		   "7 bits of padding refused");
	TAP_EQ_INT(bech32_decode_words(hrp, sizeof(hrp), words, 2, s,
				       strlen(s)),
		   -ENOSPC, "more words than the buffer");
	words[0] = 32;
	TAP_EQ_INT(bech32_encode_words(s, sizeof(s), "x", words, 1), -EINVAL,
		   "a word above 31 refused");
	TAP_EQ_INT(bech32_encode_words(s, sizeof(s), "aB", words, 0), -EINVAL,
		   "mixed-case HRP refused");
	TAP_EQ_INT(bech32_encode(s, 8, "x", data, 1), -ENOSPC,
		   "output larger than the buffer");
	TAP_EQ_INT(bech32_encode(s, sizeof(s), "x", data, 60), -EINVAL,
		   "output above 90 characters");
}

/* age's strings: "age1" + 52 + 6 in lowercase, the identity in
 * uppercase; both round trip. */
static void test_age(void)
{
	uint8_t key[32], back[32];
	char s[BECH32_MAX_LEN + 1], hrp[32];
	size_t i;
	long n;

	for (i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 37 + 11);
	n = bech32_encode(s, sizeof(s), "age", key, sizeof(key));
	tap_ok(n == 62 && n == BECH32_LEN(3, 32) &&
		       strncmp(s, "age1", 4) == 0,
	       "age1 recipient is 62 characters");
	n = decode(s, hrp, sizeof(hrp), back, sizeof(back));
	tap_ok(n == 32 && memcmp(back, key, 32) == 0 && strcmp(hrp, "age") == 0,
	       "age1 round trip");
	n = bech32_encode(s, sizeof(s), "AGE-SECRET-KEY-", key, sizeof(key));
	tap_ok(n == 74 && strncmp(s, "AGE-SECRET-KEY-1", 16) == 0,
	       "identity is 74 uppercase characters");
	for (i = 16; i < (size_t)n; i++)
		if (s[i] >= 'a' && s[i] <= 'z')
			break;
	TAP_EQ_INT(i, n, "identity has no lowercase letter");
	n = decode(s, hrp, sizeof(hrp), back, sizeof(back));
	tap_ok(n == 32 && memcmp(back, key, 32) == 0 &&
		       strcmp(hrp, "age-secret-key-") == 0,
	       "identity round trip, HRP in lowercase");
	s[20] = s[20] == 'Q' ? 'P' : 'Q';
	TAP_EQ_INT(decode(s, hrp, sizeof(hrp), back, sizeof(back)), -EINVAL,
		   "one changed character breaks the checksum");
}

int main(void)
{
	test_valid();
	test_invalid();
	test_bytes();
	test_age();
	return tap_done();
}
