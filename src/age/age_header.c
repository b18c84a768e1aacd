/* The age v1 header format: parse and write the version line, the
 * recipient stanzas and the "---" MAC line, and compute the header MAC.
 *
 * The parser takes any well-formed stanza, whatever its type, so that
 * files for other recipients classify right; the types check their own
 * arguments. Parsing then writing a header gives back the same bytes: the
 * format leaves no choice (canonical base64, full body lines then one
 * short one), which keeps the writer and the parser honest with each
 * other. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/age_header.h"
#include "keyfs/secmem.h"

#include "age_hkdf.h"

#define AGE_MAGIC "age-encryption.org/v1\n"
#define AGE_STANZA_PREFIX "-> "
#define AGE_MAC_PREFIX "---"
#define AGE_MAC_LABEL "header"
#define B64_COLS 64
#define B64_LINE_BYTES 48 /* what one full body line decodes to */
#define B64_RAW sodium_base64_VARIANT_ORIGINAL_NO_PADDING

_Static_assert(AGE_MAC_LEN == crypto_auth_hmacsha256_BYTES, "hmac size");
_Static_assert(AGE_B64_LEN(B64_LINE_BYTES) == B64_COLS, "body line");

/* ---- base64 ---- */

static bool is_b64_digit(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/';
}

long age_b64_decode(uint8_t *dst, size_t cap, const char *src, size_t n)
{
	size_t i, len, tail = n % 4;
	const char *end;
	char re[5];

	if (n == 0)
		return 0;
	if (tail == 1 || n > LONG_MAX)
		return -EINVAL;
	/* libsodium 1.0.18 takes bytes above 0x7f for digits: check the
	 * alphabet here. */
	for (i = 0; i < n; i++)
		if (!is_b64_digit(src[i]))
			return -EINVAL;
	if (sodium_base642bin(dst, cap, src, n, NULL, &len, &end, B64_RAW) !=
		    0 ||
	    end != src + n)
		return -EINVAL;
	/* Canonical means the unused low bits of the last digit are zero,
	 * i.e. the last partial group re-encodes to the very same text. */
	if (tail > 0) {
		sodium_bin2base64(re, sizeof(re), dst + len - (tail - 1),
				  tail - 1, B64_RAW);
		if (memcmp(re, src + n - tail, tail) != 0)
			return -EINVAL;
	}
	return (long)len;
}

size_t age_b64_encode(char *dst, const uint8_t *bin, size_t n)
{
	char line[B64_COLS + 1];
	size_t k, out = 0;

	/* By whole body lines: 48 bytes are 64 digits with no partial
	 * group, so the pieces join into one encoding. */
	for (; n > 0; bin += k, n -= k) {
		k = n < B64_LINE_BYTES ? n : B64_LINE_BYTES;
		sodium_bin2base64(line, sizeof(line), bin, k, B64_RAW);
		memcpy(dst + out, line, AGE_B64_LEN(k));
		out += AGE_B64_LEN(k);
	}
	return out;
}

/* ---- the header MAC ---- */

static int header_mac(const uint8_t key[AGE_FILE_KEY_LEN], const uint8_t *hdr,
		      size_t len, uint8_t mac[AGE_MAC_LEN])
{
	struct {
		uint8_t key[AGE_HKDF_LEN];
		crypto_auth_hmacsha256_state st;
	} *s = secmem_alloc(sizeof(*s));
	int ret;

	if (!s)
		return -ENOMEM;
	ret = age_hkdf(s->key, sizeof(s->key), NULL, 0, key, AGE_FILE_KEY_LEN,
		       (const uint8_t *)AGE_MAC_LABEL, strlen(AGE_MAC_LABEL));
	if (ret < 0)
		goto out;
	crypto_auth_hmacsha256_init(&s->st, s->key, sizeof(s->key));
	crypto_auth_hmacsha256_update(&s->st, hdr, len);
	crypto_auth_hmacsha256_final(&s->st, mac);
out:
	secmem_free(s);
	return ret;
}

int age_header_verify(const struct age_header *h, const uint8_t *in,
		      const uint8_t key[static AGE_FILE_KEY_LEN])
{
	uint8_t mac[AGE_MAC_LEN];
	int ret;

	ret = header_mac(key, in, h->mac_end, mac);
	if (ret < 0)
		return ret;
	return crypto_verify_32(mac, h->mac) == 0 ? 0 : -EBADMSG;
}

/* ---- parsing ---- */

/* The line at *pos, without its LF; -EINVAL if no LF ends it. */
static int get_line(const uint8_t *in, size_t len, size_t *pos,
		    const uint8_t **line, size_t *n)
{
	const uint8_t *nl = memchr(in + *pos, '\n', len - *pos);

	if (!nl)
		return -EINVAL;
	*line = in + *pos;
	*n = (size_t)(nl - *line);
	*pos += *n + 1;
	return 0;
}

static bool is_vchar(char c)
{
	return (unsigned char)c >= 0x21 && (unsigned char)c <= 0x7e;
}

/* "type arg...": words of 1*VCHAR, each after a single space. */
static int split_words(const char *s, size_t n, struct age_stanza *st)
{
	size_t i, start = 0, nwords = 0;
	struct age_str w;

	for (i = 0; i <= n; i++) {
		if (i < n && s[i] != ' ') {
			if (!is_vchar(s[i]))
				return -EINVAL;
			continue;
		}
		if (i == start)
			return -EINVAL; /* empty word */
		w = (struct age_str){ s + start, i - start };
		if (nwords == 0)
			st->type = w;
		else if (nwords - 1 < AGE_STANZA_ARGS_MAX)
			st->arg[nwords - 1] = w;
		nwords++;
		start = i + 1;
	}
	st->nargs = nwords - 1;
	return 0;
}

/* Bytes that n digits of canonical base64 decode to (n % 4 != 1). */
static size_t b64_decoded_len(size_t n)
{
	return n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
}

/* A stanza body: full 64-column lines, then one shorter (maybe empty)
 * line. Measured first, so that it is decoded once into its own buffer. */
static int parse_body(const uint8_t *in, size_t len, size_t *pos,
		      struct age_stanza *st)
{
	size_t p = *pos, n, cap = 0, total = 0;
	const uint8_t *line;
	uint8_t *body;
	long got;

	do {
		if (get_line(in, len, &p, &line, &n) < 0 || n > B64_COLS ||
		    n % 4 == 1)
			return -EINVAL;
		cap += b64_decoded_len(n);
	} while (n == B64_COLS);
	body = malloc(cap > 0 ? cap : 1);
	if (!body)
		return -ENOMEM;
	st->mem = body;
	do {
		get_line(in, len, pos, &line, &n); /* found above */
		got = age_b64_decode(body + total, cap - total,
				     (const char *)line, n);
		if (got < 0)
			return -EINVAL;
		total += (size_t)got;
	} while (n == B64_COLS);
	st->body = body;
	st->bodylen = total;
	return 0;
}

/* Room for one more stanza in h. */
static int grow(struct age_header *h)
{
	size_t cap = h->cap ? h->cap * 2 : 4;
	struct age_stanza *s;

	if (h->nstanzas < h->cap)
		return 0;
	s = realloc(h->stanza, cap * sizeof(*s));
	if (!s)
		return -ENOMEM;
	h->stanza = s;
	h->cap = cap;
	return 0;
}

/* The stanza whose "-> " line is line[0, n), its body at *pos. */
static int parse_stanza(const uint8_t *in, size_t len, size_t *pos,
			const uint8_t *line, size_t n, struct age_header *h)
{
	struct age_stanza *st;
	int ret;

	ret = grow(h);
	if (ret < 0)
		return ret;
	st = &h->stanza[h->nstanzas];
	memset(st, 0, sizeof(*st));
	ret = split_words((const char *)line, n, st);
	if (ret == 0)
		ret = parse_body(in, len, pos, st);
	if (ret < 0) {
		age_stanza_clear(st);
		return ret;
	}
	h->nstanzas++;
	return 0;
}

/* "--- " and the base64 MAC, nothing else. */
static int parse_mac(const uint8_t *line, size_t n, struct age_header *h)
{
	size_t b64 = AGE_B64_LEN(AGE_MAC_LEN);

	if (n != 4 + b64 || line[3] != ' ' ||
	    age_b64_decode(h->mac, sizeof(h->mac), (const char *)line + 4,
			   b64) != AGE_MAC_LEN)
		return -EINVAL;
	return 0;
}

int age_header_parse(const uint8_t *in, size_t len, struct age_header *h)
{
	size_t pos = strlen(AGE_MAGIC), n;
	const uint8_t *line;
	int ret;

	memset(h, 0, sizeof(*h));
	if (!in || len < pos || memcmp(in, AGE_MAGIC, pos) != 0)
		return -EINVAL;
	for (;;) {
		ret = get_line(in, len, &pos, &line, &n);
		if (ret < 0)
			goto out;
		if (n >= 3 && memcmp(line, AGE_MAC_PREFIX, 3) == 0)
			break;
		if (n < 3 || memcmp(line, AGE_STANZA_PREFIX, 3) != 0) {
			ret = -EINVAL;
			goto out;
		}
		ret = parse_stanza(in, len, &pos, line + 3, n - 3, h);
		if (ret < 0)
			goto out;
	}
	ret = parse_mac(line, n, h);
	if (ret == 0 && h->nstanzas == 0)
		ret = -EINVAL;
	if (ret < 0)
		goto out;
	h->mac_end = (size_t)(line - in) + 3;
	h->payload = pos;
	return 0;
out:
	age_header_free(h);
	return ret;
}

void age_header_free(struct age_header *h)
{
	size_t i;

	for (i = 0; i < h->nstanzas; i++)
		age_stanza_clear(&h->stanza[i]);
	free(h->stanza);
	memset(h, 0, sizeof(*h));
}

/* ---- writing ---- */

size_t age_stanza_size(const struct age_stanza *s)
{
	size_t i, n, digits = AGE_B64_LEN(s->bodylen);

	n = strlen(AGE_STANZA_PREFIX) + s->type.len + 1;
	for (i = 0; i < s->nargs && i < AGE_STANZA_ARGS_MAX; i++)
		n += 1 + s->arg[i].len;
	/* Every full line ends in LF, and so does the short last one. */
	return n + digits + digits / B64_COLS + 1;
}

size_t age_header_size(size_t stanza_bytes)
{
	return strlen(AGE_MAGIC) + stanza_bytes + strlen(AGE_MAC_PREFIX " ") +
	       AGE_B64_LEN(AGE_MAC_LEN) + 1;
}

static bool is_word(const struct age_str *w)
{
	size_t i;

	if (w->len == 0)
		return false;
	for (i = 0; i < w->len; i++)
		if (!is_vchar(w->p[i]))
			return false;
	return true;
}

/* Whether s would parse back as itself. */
static bool writable(const struct age_stanza *s)
{
	size_t i;

	if (s->nargs > AGE_STANZA_ARGS_MAX || !is_word(&s->type))
		return false;
	for (i = 0; i < s->nargs; i++)
		if (!is_word(&s->arg[i]))
			return false;
	return s->body || s->bodylen == 0;
}

static void put(uint8_t *out, size_t *pos, const void *s, size_t n)
{
	memcpy(out + *pos, s, n);
	*pos += n;
}

static void put_stanza(uint8_t *out, size_t *pos, const struct age_stanza *s)
{
	size_t i, done, k;

	put(out, pos, AGE_STANZA_PREFIX, strlen(AGE_STANZA_PREFIX));
	put(out, pos, s->type.p, s->type.len);
	for (i = 0; i < s->nargs; i++) {
		put(out, pos, " ", 1);
		put(out, pos, s->arg[i].p, s->arg[i].len);
	}
	put(out, pos, "\n", 1);
	/* One line per 48 bytes; a body that fills its last line whole
	 * still ends with an empty line. */
	done = 0;
	do {
		k = s->bodylen - done;
		if (k > B64_LINE_BYTES)
			k = B64_LINE_BYTES;
		if (k > 0)
			*pos += age_b64_encode((char *)out + *pos,
					       s->body + done, k);
		put(out, pos, "\n", 1);
		done += k;
	} while (k == B64_LINE_BYTES);
}

int age_header_write(uint8_t *out, const struct age_stanza *s, size_t n,
		     const uint8_t key[static AGE_FILE_KEY_LEN], size_t *hlen)
{
	uint8_t mac[AGE_MAC_LEN];
	size_t i, pos = 0;
	int ret;

	if (n == 0)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!writable(&s[i]))
			return -EINVAL;
	put(out, &pos, AGE_MAGIC, strlen(AGE_MAGIC));
	for (i = 0; i < n; i++)
		put_stanza(out, &pos, &s[i]);
	put(out, &pos, AGE_MAC_PREFIX, strlen(AGE_MAC_PREFIX));
	ret = header_mac(key, out, pos, mac);
	if (ret < 0)
		return ret;
	put(out, &pos, " ", 1);
	pos += age_b64_encode((char *)out + pos, mac, AGE_MAC_LEN);
	put(out, &pos, "\n", 1);
	*hlen = pos;
	return 0;
}

/* ---- stanzas ---- */

bool age_stanza_is(const struct age_stanza *s, const char *type)
{
	return s->type.len == strlen(type) &&
	       memcmp(s->type.p, type, s->type.len) == 0;
}

void age_stanza_clear(struct age_stanza *s)
{
	free(s->mem);
	memset(s, 0, sizeof(*s));
}
