/* ASCII armor for age files: strict PEM (RFC 7468 section 3) with the label
 * "AGE ENCRYPTED FILE", as the age spec asks. Armor is malleable unless the
 * decoder is strict, so it accepts exactly one encoding of each file: full
 * 64-column lines but the last, canonical padded base64, and nothing around
 * the block but whitespace. CRLF line endings are accepted, as age does. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/armor.h"

#define ARMOR_COLS 64
#define ARMOR_LINE_BYTES 48 /* binary bytes behind one full line */
#define B64_ORIG sodium_base64_VARIANT_ORIGINAL

/* Larger inputs would overflow the size arithmetic; nothing keyfs armors
 * comes anywhere near this. */
#define ARMOR_MAX_IN (SIZE_MAX / 4)

_Static_assert(ARMOR_LINE_BYTES / 3 * 4 == ARMOR_COLS, "line geometry");

size_t armor_size(size_t len)
{
	size_t b64 = (len + 2) / 3 * 4;
	size_t lines = (b64 + ARMOR_COLS - 1) / ARMOR_COLS;

	return sizeof(ARMOR_BEGIN) + b64 + lines + sizeof(ARMOR_END);
}

/* The armor carries ciphertext, which is public: a table lookup is
 * enough, where sodium_bin2base64()'s constant-time encoding cost a
 * tenth of a seal to public keys. n is at most a line's bytes. */
static size_t b64_line(char *dst, const uint8_t *in, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, pos = 0;
	uint32_t v;

	for (i = 0; i + 3 <= n; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		dst[pos++] = tab[v >> 18];
		dst[pos++] = tab[v >> 12 & 63];
		dst[pos++] = tab[v >> 6 & 63];
		dst[pos++] = tab[v & 63];
	}
	if (i < n) {
		v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
		dst[pos++] = tab[v >> 18];
		dst[pos++] = tab[v >> 12 & 63];
		dst[pos++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
		dst[pos++] = '=';
	}
	return pos;
}

int armor_encode(const uint8_t *in, size_t len, char **out, size_t *outlen)
{
	size_t size, off, pos;
	char *buf;

	if (len > ARMOR_MAX_IN)
		return -EFBIG;
	size = armor_size(len);
	buf = malloc(size);
	if (!buf)
		return -ENOMEM;

	memcpy(buf, ARMOR_BEGIN "\n", sizeof(ARMOR_BEGIN));
	pos = sizeof(ARMOR_BEGIN);
	for (off = 0; off < len; off += ARMOR_LINE_BYTES) {
		size_t n = len - off < ARMOR_LINE_BYTES ? len - off
							: ARMOR_LINE_BYTES;

		pos += b64_line(buf + pos, in + off, n);
		buf[pos++] = '\n';
	}
	memcpy(buf + pos, ARMOR_END "\n", sizeof(ARMOR_END));
	pos += sizeof(ARMOR_END);

	*out = buf;
	*outlen = pos;
	return 0;
}

static bool is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	       c == '\f';
}

static size_t skip_space(const uint8_t *in, size_t len, size_t pos)
{
	while (pos < len && is_space(in[pos]))
		pos++;
	return pos;
}

bool armor_detect(const uint8_t *in, size_t len)
{
	size_t pos = skip_space(in, len, 0);

	return len - pos >= strlen(ARMOR_BEGIN) &&
	       memcmp(in + pos, ARMOR_BEGIN, strlen(ARMOR_BEGIN)) == 0;
}

/* One line starting at *pos: its content without the LF or CRLF ending.
 * *eol tells whether an ending was there (false at the end of the input). */
static void next_line(const uint8_t *in, size_t len, size_t *pos,
		      const uint8_t **line, size_t *linelen, bool *eol)
{
	const uint8_t *nl = memchr(in + *pos, '\n', len - *pos);
	size_t end = nl ? (size_t)(nl - in) : len;
	size_t n = end - *pos;

	if (nl && n > 0 && in[end - 1] == '\r')
		n--;
	*line = in + *pos;
	*linelen = n;
	*eol = nl != NULL;
	*pos = nl ? end + 1 : len;
}

static bool line_is(const uint8_t *line, size_t n, const char *s)
{
	return n == strlen(s) && memcmp(line, s, n) == 0;
}

/* Value of a base64 digit, or -1. libsodium 1.0.18 takes bytes above
 * 0x7f for digits, so the alphabet is checked here, not left to it. */
static int b64_value(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static bool b64_alphabet(const char *b64, size_t n)
{
	size_t i, pad = 0;

	while (pad < 2 && pad < n && b64[n - 1 - pad] == '=')
		pad++;
	for (i = 0; i < n - pad; i++)
		if (b64_value((uint8_t)b64[i]) < 0)
			return false;
	return true;
}

/* Padded base64 is canonical when the bits the padding hides are zero:
 * "xx==" carries 8 bits in 12, "xxx=" 16 in 18. */
static bool b64_canonical(const char *b64, size_t n)
{
	int v;

	if (n < 4 || b64[n - 1] != '=')
		return true;
	if (b64[n - 2] == '=') {
		v = b64_value(b64[n - 3]);
		return v >= 0 && (v & 0x0f) == 0;
	}
	v = b64_value(b64[n - 2]);
	return v >= 0 && (v & 0x03) == 0;
}

/* Gather the base64 lines between BEGIN and END into b64 (which has room
 * for len bytes) and return the offset just past the END line. */
static int collect_lines(const uint8_t *in, size_t len, size_t pos,
			 char *b64, size_t *b64len, size_t *endpos)
{
	const uint8_t *line;
	size_t n, total = 0;
	bool eol, short_seen = false;

	for (;;) {
		if (pos >= len)
			return -EINVAL; /* no END line */
		next_line(in, len, &pos, &line, &n, &eol);
		if (line_is(line, n, ARMOR_END))
			break;
		/* A line shorter than 64 columns ends the data: an empty
		 * line, or anything after a short one, is not strict PEM. */
		if (!eol || n == 0 || n > ARMOR_COLS || short_seen)
			return -EINVAL;
		short_seen = n < ARMOR_COLS;
		memcpy(b64 + total, line, n);
		total += n;
	}
	*b64len = total;
	*endpos = pos;
	return 0;
}

static int decode_b64(const char *b64, size_t n, uint8_t **out,
		      size_t *outlen)
{
	const char *end;
	size_t binlen;
	uint8_t *bin;

	/* Padded base64 comes in whole quads, of the alphabet only. */
	if (n % 4 != 0 || !b64_alphabet(b64, n) || !b64_canonical(b64, n))
		return -EINVAL;
	bin = malloc(n / 4 * 3 + 1);
	if (!bin)
		return -ENOMEM;
	if (n > 0 && (sodium_base642bin(bin, n / 4 * 3, b64, n, NULL, &binlen,
					&end, B64_ORIG) != 0 ||
		      end != b64 + n)) {
		free(bin);
		return -EINVAL;
	}
	*out = bin;
	*outlen = n > 0 ? binlen : 0;
	return 0;
}

int armor_decode(const uint8_t *in, size_t len, uint8_t **out, size_t *outlen)
{
	const uint8_t *line;
	size_t pos, n, b64len, endpos;
	char *b64 = NULL;
	bool eol;
	int ret = -EINVAL;

	pos = skip_space(in, len, 0);
	next_line(in, len, &pos, &line, &n, &eol);
	if (!eol || !line_is(line, n, ARMOR_BEGIN))
		goto out;

	b64 = malloc(len - pos + 1);
	if (!b64) {
		ret = -ENOMEM;
		goto out;
	}
	ret = collect_lines(in, len, pos, b64, &b64len, &endpos);
	if (ret < 0)
		goto out;
	/* Only whitespace may follow, so nothing can ride along unsigned. */
	if (skip_space(in, len, endpos) != len) {
		ret = -EINVAL;
		goto out;
	}
	ret = decode_b64(b64, b64len, out, outlen);
out:
	free(b64);
	return ret;
}
