/* allowed_signers (ssh-keygen(1), ALLOWED SIGNERS): the keys trusted to
 * sign, per principal and namespace. The reading follows ssh-keygen's
 * own, not just its manual (quoted option values, unknown options making
 * a line bad, local times through mktime), so that keyfs and a restorer
 * running `ssh-keygen -Y verify` trust the same lines. Keys are compared
 * as text: the 51-byte key blob is 17 whole base64 groups, without
 * padding or spare bits, so it has one encoding only, and the line's key
 * word equals sshsig_pubkey_text()'s exactly when the key is pk. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "keyfs/sshsig.h"

#define KEY_TYPE "ssh-ed25519"
/* The longest dequoted option value read; longer ones make the line bad.
 * ssh-keygen's pattern lists stop at 1023 bytes per pattern. */
#define VALUE_MAX 1024
#define TIME_MAX 32

struct span {
	const char *p;
	size_t n;
};

struct opts {
	bool ca;
	bool has_ns;
	char ns[VALUE_MAX]; /* dequoted pattern list */
	long long after, before; /* 0: none */
};

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static bool is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static bool span_is(struct span s, const char *lit)
{
	return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

static void skip_blanks(struct span *s)
{
	while (s->n && is_blank(*s->p)) {
		s->p++;
		s->n--;
	}
}

/* The next blank-delimited word of s, blanks before it skipped. */
static struct span word(struct span *s)
{
	struct span w;

	skip_blanks(s);
	w.p = s->p;
	while (s->n && !is_blank(*s->p)) {
		s->p++;
		s->n--;
	}
	w.n = (size_t)(s->p - w.p);
	return w;
}

/* '*' any run, '?' any one byte, all else itself. Iterative: a failed
 * match resumes after the last '*' with one more byte swallowed, so no
 * input makes it exponential. */
static bool glob(struct span s, struct span p)
{
	size_t si = 0, pi = 0, star = SIZE_MAX, mark = 0;

	while (si < s.n) {
		if (pi < p.n && p.p[pi] == '*') {
			star = pi++;
			mark = si;
		} else if (pi < p.n && (p.p[pi] == '?' || p.p[pi] == s.p[si])) {
			si++;
			pi++;
		} else if (star != SIZE_MAX) {
			pi = star + 1;
			si = ++mark;
		} else {
			return false;
		}
	}
	while (pi < p.n && p.p[pi] == '*')
		pi++;
	return pi == p.n;
}

/* ssh-keygen's pattern lists: comma-separated patterns, true if one
 * matches and no "!pattern" does. */
static bool match_list(struct span s, struct span list)
{
	bool positive = false, neg;
	struct span pat;
	const char *comma;

	while (list.n) {
		neg = *list.p == '!';
		if (neg) {
			list.p++;
			list.n--;
		}
		comma = memchr(list.p, ',', list.n);
		pat = (struct span){ list.p, comma ? (size_t)(comma - list.p) : list.n };
		list.p += pat.n + (comma != NULL);
		list.n -= pat.n + (comma != NULL);
		if (glob(s, pat)) {
			if (neg)
				return false;
			positive = true;
		}
	}
	return positive;
}

/* A quoted value at *s (after "name="), its quotes removed and \"
 * unescaped, into out; the span advanced past the closing quote. */
static bool dequote(struct span *s, char *out, size_t cap)
{
	size_t i = 0;

	if (!s->n || *s->p != '"')
		return false;
	s->p++;
	s->n--;
	while (s->n && *s->p != '"') {
		if (s->n > 1 && s->p[0] == '\\' && s->p[1] == '"') {
			s->p++;
			s->n--;
		}
		if (i + 1 >= cap)
			return false;
		out[i++] = *s->p++;
		s->n--;
	}
	if (!s->n)
		return false;
	s->p++;
	s->n--;
	out[i] = '\0';
	return true;
}

static bool take(struct span *s, size_t n)
{
	s->p += n;
	s->n -= n;
	return true;
}

/* Keyword "name=" in any case at *s, consumed. */
static bool keyword(struct span *s, const char *name)
{
	size_t n = strlen(name);

	return s->n > n && strncasecmp(s->p, name, n) == 0 && s->p[n] == '=' && take(s, n + 1);
}

/* YYYYMMDD[HHMM[SS]] and a Z or UTC suffix for UTC, otherwise local
 * time; 0 if bad. The fields' ranges are strptime's, and a day past the
 * month's end rolls over, as in ssh-keygen. */
static long long parse_time(const char *s)
{
	static const int lo[] = { 0, 1, 1, 0, 0, 0 }, hi[] = { 9999, 12, 31, 23, 59, 61 };
	size_t n = strlen(s), i, j, f, w;
	int v[6] = { 0 };
	struct tm tm = { 0 };
	bool utc = false;
	time_t t;

	if (n > 1 && (s[n - 1] == 'Z' || s[n - 1] == 'z')) {
		utc = true;
		n--;
	} else if (n > 3 && strncasecmp(s + n - 3, "UTC", 3) == 0) {
		utc = true;
		n -= 3;
	}
	if (n != 8 && n != 12 && n != 14)
		return 0;
	for (i = 0, f = 0; i < n; i += w, f++) {
		w = f == 0 ? 4 : 2;
		for (j = i; j < i + w; j++) {
			if (s[j] < '0' || s[j] > '9')
				return 0;
			v[f] = v[f] * 10 + (s[j] - '0');
		}
		if (v[f] < lo[f] || v[f] > hi[f])
			return 0;
	}
	tm.tm_year = v[0] - 1900;
	tm.tm_mon = v[1] - 1;
	tm.tm_mday = v[2];
	tm.tm_hour = v[3];
	tm.tm_min = v[4];
	tm.tm_sec = v[5];
	/* ssh-keygen's mktime() gets tm_isdst 0 too: in summer time a local
	 * time is read as standard time, an hour later than the wall clock.
	 * We agree with the tool a restorer runs rather than with the clock. */
	tm.tm_isdst = 0;
	t = utc ? timegm(&tm) : mktime(&tm);
	return t > 0 ? (long long)t : 0;
}

static bool time_opt(struct span *s, long long *t)
{
	char v[TIME_MAX];

	if (*t != 0 || !dequote(s, v, sizeof(v)))
		return false;
	*t = parse_time(v);
	return *t != 0;
}

/* The options word, as ssh-keygen's sigopts: known options separated by
 * commas; anything else makes the line bad. */
static bool parse_opts(struct span s, struct opts *o)
{
	while (s.n) {
		if (s.n >= 14 && strncasecmp(s.p, "cert-authority", 14) == 0) {
			take(&s, 14);
			o->ca = true;
		} else if (keyword(&s, "namespaces")) {
			if (o->has_ns || !dequote(&s, o->ns, sizeof(o->ns)))
				return false;
			o->has_ns = true;
		} else if (keyword(&s, "valid-after")) {
			if (!time_opt(&s, &o->after))
				return false;
		} else if (keyword(&s, "valid-before")) {
			if (!time_opt(&s, &o->before))
				return false;
		}
		if (!s.n)
			break;
		if (*s.p != ',' || s.n == 1)
			return false;
		take(&s, 1);
	}
	return !(o->after && o->before && o->before <= o->after);
}

/* The options word: up to a space or tab outside double quotes. */
static bool opts_word(struct span *s, struct span *w)
{
	bool quoted = false;

	skip_blanks(s);
	w->p = s->p;
	while (s->n && (quoted || (*s->p != ' ' && *s->p != '\t'))) {
		if (s->n > 1 && s->p[0] == '\\' && s->p[1] == '"')
			take(s, 1);
		else if (*s->p == '"')
			quoted = !quoted;
		take(s, 1);
	}
	w->n = (size_t)(s->p - w->p);
	return !quoted;
}

/* The principals field: a word, or a double-quoted string (no escapes;
 * as ssh-keygen's strdelimw, the next word may follow the closing quote
 * at once). A quote inside a word makes the line bad. */
static bool principals_word(struct span *s, struct span *w)
{
	const char *q;

	if (s->n && *s->p == '"') {
		q = memchr(s->p + 1, '"', s->n - 1);
		if (!q)
			return false;
		*w = (struct span){ s->p + 1, (size_t)(q - s->p - 1) };
		take(s, (size_t)(q + 1 - s->p));
		return true;
	}
	*w = word(s);
	return !memchr(w->p, '"', w->n);
}

/* One line (no newline): true if it names key (the base64 word of pk)
 * for namespace ns at now; its first principal in *first. */
static bool check_line(struct span line, struct span key, const char *ns, long long now,
		       struct span *first)
{
	struct span principals, after, w, type, b64, o = { NULL, 0 };
	struct opts opts = { 0 };
	const char *comma;
	size_t i;

	skip_blanks(&line);
	if (!line.n || *line.p == '#' || memchr(line.p, '\0', line.n))
		return false;
	if (!principals_word(&line, &principals) || !principals.n)
		return false;
	/* A key type first means no options; anything else is options. */
	after = line;
	w = word(&line);
	if (span_is(w, KEY_TYPE)) {
		type = w;
	} else {
		line = after;
		if (!opts_word(&line, &o))
			return false;
		type = word(&line);
	}
	b64 = word(&line);
	if (!span_is(type, KEY_TYPE) || b64.n != key.n || memcmp(b64.p, key.p, key.n) != 0)
		return false;

	if (o.n && !parse_opts(o, &opts))
		return false;
	if (opts.ca)
		return false;
	comma = memchr(principals.p, ',', principals.n);
	*first = (struct span){ principals.p,
				comma ? (size_t)(comma - principals.p) : principals.n };
	if (!first->n || first->n > SSHSIG_PRINCIPAL_MAX)
		return false;
	for (i = 0; i < first->n; i++)
		if (is_control((unsigned char)first->p[i]))
			return false;
	if (!match_list(*first, principals))
		return false;
	if (opts.has_ns &&
	    !match_list((struct span){ ns, strlen(ns) }, (struct span){ opts.ns, strlen(opts.ns) }))
		return false;
	if (opts.after && now < opts.after)
		return false;
	return !(opts.before && now > opts.before);
}

bool sshsig_allowed(const char *text, size_t len, const uint8_t pk[static SSHSIG_PK_LEN],
		    const char *ns, long long now, char *principal, size_t size)
{
	char text_pk[SSHSIG_PUBKEY_TEXT_MAX];
	struct span rest = { text, len }, line, key, first;
	const char *nl;
	size_t n;
	int ret;

	ret = sshsig_pubkey_text(pk, text_pk, sizeof(text_pk));
	if (ret < 0)
		return false;
	/* The base64 word after "ssh-ed25519 ". */
	key = (struct span){ text_pk + sizeof(KEY_TYPE), (size_t)ret - sizeof(KEY_TYPE) };
	while (rest.n) {
		nl = memchr(rest.p, '\n', rest.n);
		line = (struct span){ rest.p, nl ? (size_t)(nl - rest.p) : rest.n };
		take(&rest, line.n + (nl != NULL));
		if (!check_line(line, key, ns, now, &first))
			continue;
		if (principal && size) {
			n = first.n < size - 1 ? first.n : size - 1;
			memcpy(principal, first.p, n);
			principal[n] = '\0';
		}
		return true;
	}
	return false;
}

int sshsig_allowed_line(const char *principal, const uint8_t pk[static SSHSIG_PK_LEN], char *out,
			size_t size)
{
	char key[SSHSIG_PUBKEY_TEXT_MAX];
	size_t i, n = strlen(principal);
	int ret;

	if (n == 0 || n > SSHSIG_PRINCIPAL_MAX || principal[0] == '#' || principal[0] == '!')
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (is_control((unsigned char)principal[i]) || principal[i] == ' ' ||
		    principal[i] == '"' || principal[i] == ',')
			return -EINVAL;
	ret = sshsig_pubkey_text(pk, key, sizeof(key));
	if (ret < 0)
		return ret;
	ret = snprintf(out, size, "%s namespaces=\"%s\" %s\n", principal, SSHSIG_NAMESPACE, key);
	if (ret < 0 || (size_t)ret >= size)
		return -ENOSPC;
	return ret;
}
