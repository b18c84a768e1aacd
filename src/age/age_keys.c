/* age recipients and identity files, from buffers: a line at a time, each
 * handed to its type's constructor, refused with its line number
 * otherwise. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/age_keys.h"
#include "keyfs/age_recipient.h"

#define SSH_PREFIX "ssh-ed25519"
#define SSH_PEM "-----BEGIN OPENSSH PRIVATE KEY-----"
#define X25519_ID_PREFIX "AGE-SECRET-KEY-1"
#define NO_COMMENT "ssh-ed25519 key"

static void why_line(char *why, size_t whylen, size_t line, const char *fmt,
		     ...) __attribute__((format(printf, 4, 5)));

static void why_line(char *why, size_t whylen, size_t line, const char *fmt,
		     ...)
{
	va_list ap;
	int n;

	if (!why || whylen == 0)
		return;
	n = snprintf(why, whylen, "line %zu: ", line);
	if (n < 0 || (size_t)n >= whylen)
		return;
	va_start(ap, fmt);
	vsnprintf(why + n, whylen - (size_t)n, fmt, ap);
	va_end(ap);
}

static bool starts(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && memcmp(s, prefix, n) == 0;
}

/* Walks text a line at a time: *line and *len get the next line, without
 * its LF or CRLF; false at the end. */
struct lines {
	const char *p, *end;
	size_t no;
};

static bool next_line(struct lines *it, const char **line, size_t *len)
{
	const char *nl;

	if (it->p >= it->end)
		return false;
	nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
	*line = it->p;
	*len = (size_t)((nl ? nl : it->end) - it->p);
	it->p = nl ? nl + 1 : it->end;
	it->no++;
	if (*len > 0 && (*line)[*len - 1] == '\r')
		(*len)--;
	return true;
}

/* As age: an empty line or one starting with "#" is no key. A line of
 * only blanks is not empty, and is refused like any other. */
static bool is_skipped(const char *line, size_t len)
{
	return len == 0 || line[0] == '#';
}

/* ---- recipients ---- */

/* The HRP of a Bech32-looking word: up to its last "1". */
static size_t hrp_len(const char *s, size_t len)
{
	size_t i;

	for (i = len; i > 0; i--)
		if (s[i - 1] == '1')
			return i - 1;
	return 0;
}

/* What to show for a recipient: printable ASCII, others as '?'. */
static char *display_of(const char *s, size_t len)
{
	char *d;
	size_t i;

	if (len == 0) {
		s = NO_COMMENT;
		len = strlen(NO_COMMENT);
	}
	d = malloc(len + 1);
	if (!d)
		return NULL;
	for (i = 0; i < len; i++)
		d[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	d[len] = '\0';
	return d;
}

/* The key of a recipient line: its first nfields fields joined by one
 * space (a comment and extra blanks dropped), so that one key has one
 * string whatever its line looks like. */
static char *key_of(const char *line, size_t len, int nfields)
{
	const char *p = line, *end = line + len;
	char *k, *q;

	k = malloc(len + 1);
	if (!k)
		return NULL;
	q = k;
	while (nfields-- > 0) {
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (q > k)
			*q++ = ' ';
		while (p < end && *p != ' ' && *p != '\t')
			*q++ = *p++;
	}
	*q = '\0';
	return k;
}

/* r's display and key strings; -ENOMEM. */
static int strings_of(struct age_recipient_list *l, const char *line, size_t len,
		      const char *shown, size_t shown_len, int nfields)
{
	l->display[l->n] = display_of(shown, shown_len);
	l->key[l->n] = key_of(line, len, nfields);
	if (l->display[l->n] && l->key[l->n])
		return 0;
	free(l->display[l->n]);
	free(l->key[l->n]);
	return -ENOMEM;
}

/* Line into l's next recipient and its strings; *reason on a refusal. */
static int recipient_line(struct age_recipient_list *l, const char *line, size_t len,
			  const char **reason)
{
	struct age_recipient *r = &l->r[l->n];
	struct age_str comment;
	size_t h;
	int ret;

	if (starts(line, len, "age1")) {
		h = hrp_len(line, len);
		if (starts(line, len, "age1pq1")) {
			*reason = "post-quantum age1pq recipients are not "
				  "supported";
			return -EINVAL;
		}
		if (h > 3) {
			*reason = "age plugin recipients are not supported";
			return -EINVAL;
		}
		ret = age_x25519_recipient(r, line, len);
		*reason = "malformed age1 recipient";
		return ret ? ret : strings_of(l, line, len, line, len, 1);
	}
	/* "ssh-ed25519" itself, not a longer type such as a certificate's. */
	if (starts(line, len, SSH_PREFIX) &&
	    (len == strlen(SSH_PREFIX) || line[strlen(SSH_PREFIX)] == ' ' ||
	     line[strlen(SSH_PREFIX)] == '\t')) {
		ret = age_ssh_recipient(r, line, len, &comment);
		*reason = "malformed ssh-ed25519 key";
		return ret ? ret : strings_of(l, line, len, comment.p, comment.len, 2);
	}
	if (starts(line, len, "ssh-rsa"))
		*reason = "ssh-rsa keys are not supported: use an ssh-ed25519 "
			  "key or an age1 recipient";
	else if (starts(line, len, "ssh-") || starts(line, len, "ecdsa-") ||
		 starts(line, len, "sk-"))
		*reason = "this SSH key type is not supported: use an "
			  "ssh-ed25519 key or an age1 recipient";
	else if (starts(line, len, "AGE-"))
		*reason = "an identity (secret key), not a recipient";
	else
		*reason = "not an age1 or ssh-ed25519 recipient";
	return -EINVAL;
}

void age_recipient_list_free(struct age_recipient_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		age_recipient_clear(&l->r[i]);
		free(l->display[i]);
		free(l->key[i]);
	}
	free(l->r);
	free(l->display);
	free(l->key);
	memset(l, 0, sizeof(*l));
}

/* Room for one more in both arrays. */
static int grow_recipients(struct age_recipient_list *l)
{
	struct age_recipient *r;
	char **d;

	r = realloc(l->r, (l->n + 1) * sizeof(*r));
	if (!r)
		return -ENOMEM;
	l->r = r;
	d = realloc(l->display, (l->n + 1) * sizeof(*d));
	if (!d)
		return -ENOMEM;
	l->display = d;
	d = realloc(l->key, (l->n + 1) * sizeof(*d));
	if (!d)
		return -ENOMEM;
	l->key = d;
	return 0;
}

int age_keys_recipients(struct age_recipient_list *l, const char *text,
			size_t len, char *why, size_t whylen)
{
	struct lines it = { text, text + len, 0 };
	const char *line, *reason = "";
	size_t n;
	int ret = 0;

	memset(l, 0, sizeof(*l));
	if (why && whylen)
		why[0] = '\0';
	while (ret == 0 && next_line(&it, &line, &n)) {
		if (is_skipped(line, n))
			continue;
		ret = grow_recipients(l);
		if (ret < 0)
			break;
		memset(&l->r[l->n], 0, sizeof(l->r[l->n]));
		ret = memchr(line, '\0', n) ? -EINVAL :
					      recipient_line(l, line, n, &reason);
		if (ret == 0)
			l->n++;
		else
			age_recipient_clear(&l->r[l->n]);
		if (ret == -EINVAL || ret == -EPROTONOSUPPORT) {
			why_line(why, whylen, it.no, "%s",
				 memchr(line, '\0', n) ? "not a text line" :
							 reason);
			ret = -EINVAL;
		}
	}
	if (ret == 0 && l->n == 0) {
		why_line(why, whylen, it.no ? it.no : 1,
			 "no recipients in the file");
		ret = -EINVAL;
	}
	if (ret == -ENOMEM)
		why_line(why, whylen, it.no, "out of memory");
	if (ret < 0)
		age_recipient_list_free(l);
	return ret;
}

/* ---- identities ---- */

void age_identity_list_free(struct age_identity_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		age_identity_clear(&l->id[i]);
	free(l->id);
	memset(l, 0, sizeof(*l));
}

static int grow_identities(struct age_identity_list *l)
{
	struct age_identity *id;

	id = realloc(l->id, (l->n + 1) * sizeof(*id));
	if (!id)
		return -ENOMEM;
	l->id = id;
	memset(&l->id[l->n], 0, sizeof(l->id[l->n]));
	return 0;
}

/* A whole file that is one OpenSSH private key. */
static int ssh_file(struct age_identity_list *l, const char *text, size_t len,
		    char *why, size_t whylen)
{
	int ret;

	ret = grow_identities(l);
	if (ret == 0)
		ret = age_ssh_identity(&l->id[0], text, len);
	if (ret == 0) {
		l->n = 1;
		return 0;
	}
	if (ret == AGE_SSH_ENCRYPTED)
		why_line(why, whylen, 1, "%s", AGE_SSH_ENCRYPTED_MSG);
	else if (ret == -EPROTONOSUPPORT)
		why_line(why, whylen, 1, "only Ed25519 OpenSSH keys are "
					 "supported");
	else if (ret == -ENOMEM)
		why_line(why, whylen, 1, "out of memory");
	else
		why_line(why, whylen, 1, "malformed OpenSSH private key");
	return ret == -EPROTONOSUPPORT ? -EINVAL : ret;
}

static const char *identity_refusal(const char *line, size_t len)
{
	if (starts(line, len, "AGE-SECRET-KEY-PQ-1"))
		return "post-quantum AGE-SECRET-KEY-PQ identities are not "
		       "supported";
	if (starts(line, len, "AGE-PLUGIN-"))
		return "age plugin identities are not supported";
	if (starts(line, len, X25519_ID_PREFIX))
		return "malformed AGE-SECRET-KEY-1 identity";
	if (starts(line, len, "age1") || starts(line, len, "ssh-"))
		return "a recipient (public key), not an identity";
	if (starts(line, len, "age-encryption.org/") ||
	    starts(line, len, "-----BEGIN AGE ENCRYPTED FILE-----"))
		return "an encrypted identity file: open it with its "
		       "passphrase first";
	if (starts(line, len, "-----BEGIN "))
		return "not an OpenSSH Ed25519 private key";
	return "not an AGE-SECRET-KEY-1 identity";
}

int age_keys_identities(struct age_identity_list *l, const char *text,
			size_t len, char *why, size_t whylen)
{
	struct lines it = { text, text + len, 0 };
	const char *line;
	size_t n;
	int ret = 0;

	memset(l, 0, sizeof(*l));
	if (why && whylen)
		why[0] = '\0';
	if (starts(text, len, SSH_PEM))
		ret = ssh_file(l, text, len, why, whylen);
	else
		while (ret == 0 && next_line(&it, &line, &n)) {
			if (is_skipped(line, n))
				continue;
			ret = grow_identities(l);
			if (ret == 0 && !memchr(line, '\0', n))
				ret = age_x25519_identity(&l->id[l->n], line,
							  n);
			else if (ret == 0)
				ret = -EINVAL;
			if (ret == 0)
				l->n++;
			else if (ret == -ENOMEM)
				why_line(why, whylen, it.no, "out of memory");
			else
				why_line(why, whylen, it.no, "%s",
					 memchr(line, '\0', n) ?
						 "not a text line" :
						 identity_refusal(line, n));
		}
	if (ret == 0 && l->n == 0) {
		why_line(why, whylen, it.no ? it.no : 1,
			 "no identities in the file");
		ret = -EINVAL;
	}
	if (ret < 0)
		age_identity_list_free(l);
	return ret;
}
