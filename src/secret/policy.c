/* The backup password policy (policy.h): apart from the vault, so that
 * keyfsctl checks a password's form without linking the vault. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#include "keyfs/policy.h"

/* Counts characters, not bytes: UTF-8 continuation bytes do not count. */
static size_t utf8_chars(const char *s, size_t len)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xc0) != 0x80;
	return n;
}

int policy_check(const struct config *c, const char *pw, size_t len, const char **why)
{
	bool upper = false, lower = false, digit = false, symbol = false;
	size_t i;

	if (!len) {
		*why = "the password is empty";
		return -EINVAL;
	}
	if (len > SECRET_PW_MAX) {
		*why = "the password is longer than 128 bytes";
		return -EINVAL;
	}
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)pw[i];

		if (ch < 0x20 || ch == 0x7f) {
			*why = "the password contains a control character";
			return -EINVAL;
		}
		upper |= ch >= 'A' && ch <= 'Z';
		lower |= ch >= 'a' && ch <= 'z';
		digit |= ch >= '0' && ch <= '9';
		symbol |= !(ch >= 'A' && ch <= 'Z') && !(ch >= 'a' && ch <= 'z') &&
			  !(ch >= '0' && ch <= '9');
	}
	if (utf8_chars(pw, len) < (size_t)c->min_length) {
		*why = c->min_length == 8 ? "the password is shorter than 8 characters"
					  : "the password is shorter than the configured minimum length";
		return -EINVAL;
	}
	if (c->policy != POLICY_COMPLEX)
		return 0;
	if (!upper)
		*why = "the password needs an upper-case letter";
	else if (!lower)
		*why = "the password needs a lower-case letter";
	else if (!digit)
		*why = "the password needs a digit";
	else if (!symbol)
		*why = "the password needs a symbol (neither letter nor digit)";
	else
		return 0;
	return -EINVAL;
}
