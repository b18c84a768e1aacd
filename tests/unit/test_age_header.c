/* Unit tests of the age header format: stanza write/parse round trips at
 * the body sizes where lines break, the MAC, sizes, the refusals of the
 * parser and the writer, and canonical base64. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/age_header.h"

#include "tap.h"

static const uint8_t key[AGE_FILE_KEY_LEN] = "YELLOW SUBMARINE";

static struct age_str word(const char *s)
{
	return (struct age_str){ s, strlen(s) };
}

static bool str_eq(const struct age_str *a, const struct age_str *b)
{
	return a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
}

static bool stanza_eq(const struct age_stanza *a, const struct age_stanza *b)
{
	size_t i;

	if (!str_eq(&a->type, &b->type) || a->nargs != b->nargs ||
	    a->bodylen != b->bodylen ||
	    (a->bodylen && memcmp(a->body, b->body, a->bodylen) != 0))
		return false;
	for (i = 0; i < a->nargs; i++)
		if (!str_eq(&a->arg[i], &b->arg[i]))
			return false;
	return true;
}

/* Writes s[0, n) and returns the malloc()ed header, or NULL. */
static uint8_t *write_header(const struct age_stanza *s, size_t n,
			     size_t *len)
{
	size_t i, bytes = 0, size;
	uint8_t *out;

	for (i = 0; i < n; i++)
		bytes += age_stanza_size(&s[i]);
	size = age_header_size(bytes);
	out = malloc(size);
	if (age_header_write(out, s, n, key, len) != 0 || *len != size) {
		free(out);
		return NULL;
	}
	return out;
}

/* Write, parse, compare, write again: the same bytes. */
static void round_trip(const char *what, const struct age_stanza *s, size_t n)
{
	uint8_t *hdr, *again = NULL;
	struct age_header h;
	size_t len = 0, len2 = 0, i;
	bool same = true;

	hdr = write_header(s, n, &len);
	if (!tap_ok(hdr != NULL, "%s: written at its announced size", what))
		return;
	if (!tap_ok(age_header_parse(hdr, len, &h) == 0, "%s: parses", what))
		goto out;
	same = h.nstanzas == n && h.payload == len &&
	       h.mac_end == len - 1 - AGE_B64_LEN(AGE_MAC_LEN) - 1;
	for (i = 0; same && i < n; i++)
		same = stanza_eq(&s[i], &h.stanza[i]);
	tap_ok(same, "%s: parses to the stanzas written", what);
	TAP_EQ_INT(age_header_verify(&h, hdr, key), 0, "%s: MAC", what);
	again = write_header(h.stanza, h.nstanzas, &len2);
	tap_ok(again && len2 == len && memcmp(again, hdr, len) == 0,
	       "%s: rewritten to the same bytes", what);
	age_header_free(&h);
out:
	free(again);
	free(hdr);
}

static void test_round_trips(void)
{
	static const size_t sizes[] = { 0, 1, 2, 3, 32, 47, 48, 49, 95, 96, 97, 200 };
	uint8_t body[200];
	struct age_stanza s[3];
	char what[64];
	size_t i;

	randombytes_buf(body, sizeof(body));
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		memset(s, 0, sizeof(s));
		s[0].type = word("X25519");
		s[0].arg[0] = word("share");
		s[0].nargs = 1;
		s[0].body = body;
		s[0].bodylen = sizes[i];
		snprintf(what, sizeof(what), "one stanza, %zu-byte body",
			 sizes[i]);
		round_trip(what, s, 1);
	}
	memset(s, 0, sizeof(s));
	s[0].type = word("scrypt");
	s[0].arg[0] = word("c2FsdHNhbHRzYWx0c2FsdA");
	s[0].arg[1] = word("18");
	s[0].nargs = 2;
	s[0].body = body;
	s[0].bodylen = 32;
	s[1].type = word("no-args!");
	s[2].type = word("grease");
	s[2].arg[0] = word("~`|{}");
	s[2].nargs = 1;
	s[2].body = body;
	s[2].bodylen = 48;
	round_trip("three stanzas", s, 3);
}

static int parse(const char *text)
{
	struct age_header h;
	int ret = age_header_parse((const uint8_t *)text, strlen(text), &h);

	age_header_free(&h);
	return ret;
}

#define MAGIC "age-encryption.org/v1\n"
#define MAC "--- " "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" "\n"
#define LINE64 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

static void test_parse(void)
{
	struct age_header h;
	const char *many = MAGIC "-> t 1 2 3 4 5 6 7 8 9 10\n\n" MAC "payload";

	TAP_EQ_INT(parse(MAGIC "-> a\n\n" MAC), 0, "minimal header");
	TAP_EQ_INT(parse(MAGIC "-> a\n" LINE64 "\n\n" MAC), 0,
		   "full body line, then an empty one");
	TAP_EQ_INT(parse(MAGIC "-> a\n" LINE64 "\n" MAC), -EINVAL,
		   "full body line, no final line");
	TAP_EQ_INT(parse(MAGIC "-> a\n" LINE64 "A\n\n" MAC), -EINVAL,
		   "65-column body line");
	TAP_EQ_INT(parse(MAGIC MAC), -EINVAL, "no stanza");
	TAP_EQ_INT(parse("age-encryption.org/v2\n-> a\n\n" MAC), -EINVAL,
		   "other version");
	TAP_EQ_INT(parse(MAGIC "->  a\n\n" MAC), -EINVAL, "empty type");
	TAP_EQ_INT(parse(MAGIC "-> a  b\n\n" MAC), -EINVAL, "double space");
	TAP_EQ_INT(parse(MAGIC "-> a b \n\n" MAC), -EINVAL, "trailing space");
	TAP_EQ_INT(parse(MAGIC "-> a\tb\n\n" MAC), -EINVAL, "tab in a line");
	TAP_EQ_INT(parse(MAGIC "-> a\nAB\n" MAC), -EINVAL,
		   "non-canonical body");
	TAP_EQ_INT(parse(MAGIC "-> a\nAA==\n" MAC), -EINVAL, "padded body");
	TAP_EQ_INT(parse(MAGIC "-> a\n\n--- AAAA\n"), -EINVAL, "short MAC");
	TAP_EQ_INT(parse(MAGIC "-> a\n\n---AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"),
		   -EINVAL, "MAC without its space");
	TAP_EQ_INT(parse(MAGIC "-> a\n\n" "--- AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
		   -EINVAL, "MAC line without LF");
	TAP_EQ_INT(parse(MAGIC "-> a\r\n\n" MAC), -EINVAL, "CR in a line");

	TAP_EQ_INT(age_header_parse((const uint8_t *)many, strlen(many), &h), 0,
		   "ten arguments parse");
	tap_ok(h.nstanzas == 1 && h.stanza[0].nargs == 10 &&
		       str_eq(&h.stanza[0].arg[7], &(struct age_str){ "8", 1 }),
	       "ten arguments counted, eight kept");
	tap_ok(h.payload == strlen(many) - strlen("payload"),
	       "payload starts after the MAC line");
	age_header_free(&h);
}

static void test_write(void)
{
	uint8_t out[512], body[32] = { 0 };
	struct age_stanza s = { 0 };
	struct age_header h;
	size_t len;

	s.type = word("a");
	s.nargs = AGE_STANZA_ARGS_MAX + 1;
	TAP_EQ_INT(age_header_write(out, &s, 1, key, &len), -EINVAL,
		   "more arguments than kept");
	s.nargs = 1;
	s.arg[0] = word("b c");
	TAP_EQ_INT(age_header_write(out, &s, 1, key, &len), -EINVAL,
		   "space in an argument");
	s.arg[0] = word("");
	TAP_EQ_INT(age_header_write(out, &s, 1, key, &len), -EINVAL,
		   "empty argument");
	s.nargs = 0;
	s.type = word("\xff");
	TAP_EQ_INT(age_header_write(out, &s, 1, key, &len), -EINVAL,
		   "byte 0xff in the type");
	s.type = word("\x7f");
	TAP_EQ_INT(age_header_write(out, &s, 1, key, &len), -EINVAL,
		   "DEL in the type");
	TAP_EQ_INT(age_header_write(out, &s, 0, key, &len), -EINVAL,
		   "no stanza");

	/* The MAC is under the file key. */
	s = (struct age_stanza){ .type = word("a"), .body = body,
				 .bodylen = sizeof(body) };
	TAP_EQ_INT(age_header_write(out, &s, 1, key, &len), 0, "write");
	TAP_EQ_INT(len, age_header_size(age_stanza_size(&s)), "header size");
	TAP_EQ_INT(age_stanza_size(&s), 5 + 44, "stanza size");
	TAP_EQ_INT(age_header_size(0), 22 + 4 + 43 + 1, "header size, no stanza");
	TAP_EQ_INT(age_header_parse(out, len, &h), 0, "parse");
	TAP_EQ_INT(age_header_verify(&h, out, (const uint8_t *)"yellow submarine"),
		   -EBADMSG, "MAC under another key");
	out[len - 60] ^= 1;
	TAP_EQ_INT(age_header_verify(&h, out, key), -EBADMSG,
		   "MAC of a changed header");
	age_header_free(&h);
}

static void test_b64(void)
{
	uint8_t bin[8];
	char txt[16];

	TAP_EQ_INT(age_b64_decode(bin, sizeof(bin), "AA", 2), 1, "AA");
	TAP_EQ_INT(age_b64_decode(bin, sizeof(bin), "AB", 2), -EINVAL,
		   "AB is not canonical");
	TAP_EQ_INT(age_b64_decode(bin, sizeof(bin), "AAB", 3), -EINVAL,
		   "AAB is not canonical");
	TAP_EQ_INT(age_b64_decode(bin, sizeof(bin), "AAE", 3), 2, "AAE");
	TAP_EQ_INT(age_b64_decode(bin, sizeof(bin), "AAAAA", 5), -EINVAL,
		   "five digits");
	TAP_EQ_INT(age_b64_decode(bin, sizeof(bin), "AA==", 4), -EINVAL,
		   "padding");
	TAP_EQ_INT(age_b64_decode(bin, sizeof(bin), "AA-_", 4), -EINVAL,
		   "URL alphabet");
	TAP_EQ_INT(age_b64_decode(bin, sizeof(bin), "gU\xfd\xff", 4), -EINVAL,
		   "bytes above 0x7f");
	TAP_EQ_INT(parse(MAGIC "-> a\ngUjEym\xfd\xff\xff\xffXQEKdMMHL24oYexjE3TIC0O0zGSqJ2aUY\n" MAC),
		   -EINVAL, "body with bytes above 0x7f");
	TAP_EQ_INT(age_b64_decode(bin, 2, "AAAA", 4), -EINVAL,
		   "more than the room given");
	TAP_EQ_INT(age_b64_decode(bin, 0, "", 0), 0, "empty");
	TAP_EQ_INT(age_b64_encode(txt, (const uint8_t *)"\xff\xff", 2), 3,
		   "two bytes, three digits");
	tap_ok(memcmp(txt, "//8", 3) == 0, "two bytes encoded");
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	test_round_trips();
	test_parse();
	test_write();
	test_b64();
	return tap_done();
}
