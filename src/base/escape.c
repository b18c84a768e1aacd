/* Escaping of externally influenced text (see escape.h). */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "keyfs/escape.h"

/* The length of the UTF-8 sequence at s (1 for ASCII) and its code
 * point, or 0 if it is not valid, shortest-form UTF-8 of a scalar value.
 * The NUL that ends s is never a continuation byte, so no read passes it. */
static size_t decode(const unsigned char *s, uint32_t *cp)
{
	size_t n, i;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0; /* a continuation byte, an overlong lead, or past U+10FFFF */
	*cp = s[0] & (0x7f >> n);
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		*cp = *cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && *cp < 0x800) || (n == 4 && (*cp < 0x10000 || *cp > 0x10ffff)) ||
	    (*cp >= 0xd800 && *cp <= 0xdfff))
		return 0;
	return n;
}

/* Characters above ASCII that terminals and viewers act on (escape.h). */
static bool acts_as_control(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x200e || cp == 0x200f ||
	       (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* The length of the character at s if it goes as it is, else 0. */
static size_t plain_len(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	uint32_t cp;
	size_t n = decode(u, &cp);

	if (n == 1)
		return u[0] >= 0x20 && u[0] < 0x7f && u[0] != '\\';
	return n && !acts_as_control(cp) ? n : 0;
}

/* The escape of the character at s, which plain_len() refused, into out;
 * *used: the bytes of s it stands for. A byte that starts no valid
 * sequence is escaped alone, so what follows it is read afresh. */
static size_t encode(const char *s, unsigned flags, char out[static ESCAPE_UNIT_MAX + 1],
		     size_t *used)
{
	static const char hex[] = "0123456789abcdef";
	static const char shortcut[][2] = { { '\n', 'n' }, { '\r', 'r' }, { '\t', 't' } };
	const unsigned char *u = (const unsigned char *)s;
	uint32_t cp;
	size_t n = decode(u, &cp), i, o = 0;

	*used = n ? n : 1;
	for (i = 0; i < 3 && !(flags & ESCAPE_HEX); i++)
		if (u[0] == shortcut[i][0]) {
			out[0] = '\\';
			out[1] = shortcut[i][1];
			return 2;
		}
	if (u[0] == '\\') {
		out[0] = out[1] = '\\';
		return 2;
	}
	for (i = 0; i < *used; i++) {
		out[o++] = '\\';
		out[o++] = 'x';
		out[o++] = hex[u[i] >> 4];
		out[o++] = hex[u[i] & 15];
	}
	return o;
}

size_t escape_str(char *out, size_t size, const char *in, unsigned flags)
{
	char esc[ESCAPE_UNIT_MAX + 1];
	const char *unit;
	size_t o = 0, len, used;

	if (!size)
		return 0;
	while (*in) {
		used = plain_len(in);
		if (used) {
			unit = in;
			len = used;
		} else {
			unit = esc;
			len = encode(in, flags, esc, &used);
		}
		if (len >= size - o)
			break; /* whole characters and escapes only */
		memcpy(out + o, unit, len);
		o += len;
		in += used;
	}
	out[o] = '\0';
	return o;
}

void escape_put(FILE *f, const char *in)
{
	char esc[ESCAPE_UNIT_MAX + 1];
	size_t n, len, used;

	for (;;) {
		for (n = 0; (len = plain_len(in + n)); n += len)
			;
		if (n)
			fwrite(in, 1, n, f);
		in += n;
		if (!*in)
			return;
		len = encode(in, 0, esc, &used);
		fwrite(esc, 1, len, f);
		in += used;
	}
}
