/* Unit tests of the ASCII armor: exact sizes, the 64-column layout, round
 * trips, and the strictness that keeps armored files non-malleable. The
 * CCTV armor_* vectors run in test_age. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/armor.h"

#include "tap.h"

#define BEGIN "-----BEGIN AGE ENCRYPTED FILE-----"
#define END "-----END AGE ENCRYPTED FILE-----"

/* Every data line is 64 columns but the last, which is 1..64. */
static bool layout_ok(const char *a, size_t n)
{
	size_t pos = strlen(BEGIN) + 1, len;
	const char *nl;

	if (n < pos || memcmp(a, BEGIN "\n", pos) != 0)
		return false;
	for (;;) {
		nl = memchr(a + pos, '\n', n - pos);
		if (!nl)
			return false;
		len = (size_t)(nl - (a + pos));
		if (len == strlen(END) && memcmp(a + pos, END, len) == 0)
			return (size_t)(nl - a) + 1 == n;
		if (len == 0 || len > 64)
			return false;
		pos += len + 1;
		if (len < 64 && (n - pos != strlen(END) + 1 ||
				 memcmp(a + pos, END, strlen(END)) != 0))
			return false;
	}
}

static void test_round_trip(size_t len)
{
	uint8_t *in = malloc(len + 1), *dec = NULL;
	size_t outlen = 0, declen = 0;
	char *out = NULL;
	int ret;

	randombytes_buf(in, len);
	ret = armor_encode(in, len, &out, &outlen);
	TAP_EQ_INT(ret, 0, "encode %zu bytes", len);
	TAP_EQ_INT(outlen, armor_size(len), "armor_size(%zu) exact", len);
	tap_ok(layout_ok(out, outlen), "64-column layout at %zu bytes", len);
	tap_ok(armor_detect((uint8_t *)out, outlen), "detect at %zu", len);
	ret = armor_decode((uint8_t *)out, outlen, &dec, &declen);
	tap_ok(ret == 0 && declen == len && memcmp(dec, in, len) == 0,
	       "decode %zu bytes back", len);
	free(dec);
	free(out);
	free(in);
}

/* The encoder agrees with libsodium's, byte for byte, at every length
 * a line can end on. */
static void test_known(void)
{
	uint8_t in[100];
	char want[200], *out = NULL;
	size_t n, outlen, bad = 0;

	TAP_EQ_INT(armor_encode((const uint8_t *)"hello", 5, &out, &outlen), 0, "encode hello");
	tap_ok(out && outlen == strlen(BEGIN "\naGVsbG8=\n" END "\n") &&
	       !memcmp(out, BEGIN "\naGVsbG8=\n" END "\n", outlen), "hello is aGVsbG8=");
	free(out);
	randombytes_buf(in, sizeof(in));
	for (n = 0; n <= 48; n++) {
		sodium_bin2base64(want, sizeof(want), in, n, sodium_base64_VARIANT_ORIGINAL);
		out = NULL;
		if (armor_encode(in, n, &out, &outlen) || (n && strncmp(out + strlen(BEGIN) + 1, want,
									 strlen(want))))
			bad++;
		free(out);
	}
	TAP_EQ_INT(bad, 0, "0 to 48 bytes encode as sodium_bin2base64() does");
}

static int decode_str(const char *s)
{
	uint8_t *out = NULL;
	size_t outlen;
	int ret = armor_decode((const uint8_t *)s, strlen(s), &out, &outlen);

	free(out);
	return ret;
}

/* "hello" is aGVsbG8=; 64 chars of A's decode to 48 zero bytes. */
#define L64 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

static void test_accepts(void)
{
	uint8_t *out = NULL;
	size_t outlen = 0;
	const char *ws = " \t\n\r\n" BEGIN "\n" "aGVsbG8=\n" END "\n \n";
	int ret;

	ret = armor_decode((const uint8_t *)ws, strlen(ws), &out, &outlen);
	tap_ok(ret == 0 && outlen == 5 && memcmp(out, "hello", 5) == 0,
	       "whitespace around the block is allowed");
	free(out);
	TAP_EQ_INT(decode_str(BEGIN "\r\naGVsbG8=\r\n" END "\r\n"), 0,
		   "CRLF line endings");
	TAP_EQ_INT(decode_str(BEGIN "\naGVsbG8=\n" END), 0,
		   "no newline after END");
	TAP_EQ_INT(decode_str(BEGIN "\n" L64 "\n" END "\n"), 0,
		   "full last line");
	TAP_EQ_INT(decode_str(BEGIN "\n" END "\n"), 0, "empty armor");
}

static void test_rejects(void)
{
	static const struct {
		const char *what, *s;
	} bad[] = {
		{ "lowercase label",
		  "-----BEGIN age ENCRYPTED FILE-----\naGVsbG8=\n"
		  "-----END age ENCRYPTED FILE-----\n" },
		{ "wrong label", "-----BEGIN PGP MESSAGE-----\naGVsbG8=\n"
				 "-----END PGP MESSAGE-----\n" },
		{ "missing END", BEGIN "\naGVsbG8=\n" },
		{ "truncated END", BEGIN "\naGVsbG8=\n-----END AGE" },
		{ "garbage before", "x\n" BEGIN "\naGVsbG8=\n" END "\n" },
		{ "garbage after", BEGIN "\naGVsbG8=\n" END "\nx\n" },
		{ "invalid character", BEGIN "\naGVs*G8=\n" END "\n" },
		{ "byte above 0x7f", BEGIN "\naGVs\xffG8=\n" END "\n" },
		{ "missing padding", BEGIN "\naGVsbG8\n" END "\n" },
		{ "non-canonical padding bits", BEGIN "\naGVsbG9=\n" END "\n" },
		{ "non-canonical double pad", BEGIN "\naR==\n" END "\n" },
		{ "padding mid-stream", BEGIN "\naQ==aGVsbG8=\n" END "\n" },
		{ "short line before last", BEGIN "\naGVs\nbG8=\n" END "\n" },
		{ "long line", BEGIN "\n" L64 "AAAA\n" END "\n" },
		{ "empty line", BEGIN "\n\naGVsbG8=\n" END "\n" },
		{ "empty line before END", BEGIN "\n" L64 "\n\n" END "\n" },
		{ "space at line end", BEGIN "\naGVsbG8= \n" END "\n" },
		{ "space at line start", BEGIN "\n aGVsbG8=\n" END "\n" },
		{ "header line", BEGIN "\nHint: x\n\naGVsbG8=\n" END "\n" },
		{ "PGP checksum", BEGIN "\naGVsbG8=\n=yjEF\n" END "\n" },
		{ "space in BEGIN", "----- BEGIN AGE ENCRYPTED FILE-----\n"
				    "aGVsbG8=\n" END "\n" },
		{ "no newline after BEGIN", BEGIN },
		{ "empty input", "" },
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TAP_EQ_INT(decode_str(bad[i].s), -EINVAL, "rejects %s",
			   bad[i].what);
	tap_ok(!armor_detect((const uint8_t *)"age-encryption.org/v1\n", 22),
	       "binary age file is not armored");
	tap_ok(armor_detect((const uint8_t *)"\n " BEGIN "\n", 37),
	       "detect after leading whitespace");
}

int main(void)
{
	static const size_t sizes[] = { 0,  1,  2,   3,   47,   48,  49,
					95, 96, 97, 300, 1000, 65600 };
	size_t i;

	if (sodium_init() < 0)
		return 1;
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		test_round_trip(sizes[i]);
	TAP_EQ_INT(armor_size(0), strlen(BEGIN) + strlen(END) + 2,
		   "armor_size(0) is the two marker lines");
	TAP_EQ_INT(armor_size(48), armor_size(0) + 65, "one full line");
	TAP_EQ_INT(armor_size(49), armor_size(0) + 65 + 5, "one more quad");
	test_known();
	test_accepts();
	test_rejects();
	return tap_done();
}
