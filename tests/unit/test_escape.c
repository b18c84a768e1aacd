/* escape: what every report shows of a name, a reason or a hint. */
#include <stdlib.h>
#include <string.h>

#include "keyfs/escape.h"

#include "tap.h"

/* in through escape_str() (a roomy buffer) and escape_put(): both want. */
static void check(const char *in, unsigned flags, const char *want, const char *what)
{
	char out[256], *text = NULL;
	size_t n, len = 0;
	FILE *f;

	n = escape_str(out, sizeof(out), in, flags);
	if (!tap_ok(n == strlen(want) && !strcmp(out, want), "%s", what))
		printf("# want \"%s\"\n# got  \"%s\"\n", want, out);
	if (flags)
		return; /* escape_put() has no flags */
	f = open_memstream(&text, &len);
	if (f) {
		escape_put(f, in);
		fclose(f);
	}
	tap_ok(text && !strcmp(text, want), "%s (escape_put)", what);
	free(text);
}

static void test_ascii(void)
{
	check("", 0, "", "an empty text");
	check("sm web-1.key_x", 0, "sm web-1.key_x", "printable ASCII as it is");
	check("evil\nOK: fake", 0, "evil\\nOK: fake", "a line feed cannot start a line");
	check("a\tb\rc", 0, "a\\tb\\rc", "tab and carriage return as C writes them");
	check("\x1b[2J", 0, "\\x1b[2J", "ESC as \\x1b");
	check("\x01\x7f\x1f", 0, "\\x01\\x7f\\x1f", "other control bytes and DEL as \\xNN");
	check("a\\nb", 0, "a\\\\nb", "a backslash doubled: an escape reads back as one");
	check("x\ny\x1b", ESCAPE_HEX, "x\\x0ay\\x1b", "the log's format: \\xNN for every control");
	check("a\\b", ESCAPE_HEX, "a\\\\b", "the log's format doubles backslashes too");
}

static void test_utf8(void)
{
	check("cl\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x94\x91", 0, "cl\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x94\x91",
	      "UTF-8 names stay readable");
	check("a\x9b" "2J", 0, "a\\x9b2J", "a lone 0x9b (CSI in 8-bit terminals) escaped");
	check("\xc2\x9b" "2J", 0, "\\xc2\\x9b2J", "U+009B, the C1 CSI, escaped");
	check("\xe2\x80\xae" "cod.exe", 0, "\\xe2\\x80\\xaecod.exe", "a bidi override escaped");
	check("a\xe2\x80\xa8" "b", 0, "a\\xe2\\x80\\xa8b", "the line separator escaped");
	check("\xc0\xaf", 0, "\\xc0\\xaf", "an overlong '/' escaped byte by byte");
	check("\xed\xa0\x80", 0, "\\xed\\xa0\\x80", "a UTF-16 surrogate escaped");
	check("\xf4\x90\x80\x80", 0, "\\xf4\\x90\\x80\\x80", "past U+10FFFF escaped");
	check("\xe6\x97", 0, "\\xe6\\x97", "a sequence cut short escaped");
	check("\xe6\x97" "a\xc3\xa9", 0, "\\xe6\\x97a\xc3\xa9", "what follows a bad byte read afresh");
}

/* Cut to fit, never inside an escape or a character. */
static void test_cut(void)
{
	char out[8];
	size_t n;

	n = escape_str(out, 6, "abc\x1bxyz", 0);
	tap_ok(n == 3 && !strcmp(out, "abc"), "an escape that does not fit is left out whole");
	n = escape_str(out, sizeof(out), "abc\x1bxyz", 0);
	tap_ok(n == 7 && !strcmp(out, "abc\\x1b"), "one that fits, then nothing cut in half");
	n = escape_str(out, 6, "abcd\xc3\xa9", 0);
	tap_ok(n == 4 && !strcmp(out, "abcd"), "a character that does not fit is left out whole");
	n = escape_str(out, 1, "abc", 0);
	tap_ok(n == 0 && !out[0], "room for the NUL only");
	n = escape_str(out, sizeof(out), "abcdefghij", 0);
	tap_ok(n == 7 && !strcmp(out, "abcdefg"), "plain text cut at the end of the buffer");
}

/* No byte value passes as a control or as a lone high byte (invalid
 * UTF-8 alone): every value between two letters. */
static void test_every_byte(void)
{
	char in[4], out[64];
	bool clean = true;
	int b;

	for (b = 1; b < 256; b++) {
		in[0] = 'x';
		in[1] = (char)b;
		in[2] = 'y';
		in[3] = '\0';
		escape_str(out, sizeof(out), in, 0);
		for (const unsigned char *p = (const unsigned char *)out; *p; p++)
			if (*p < 0x20 || *p == 0x7f || *p >= 0x80)
				clean = false;
	}
	tap_ok(clean, "no control byte and no lone high byte passes");
}

int main(void)
{
	test_ascii();
	test_utf8();
	test_cut();
	test_every_byte();
	return tap_done();
}
