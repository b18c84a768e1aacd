/* Names in a keyset: keyset names, member paths, symlink targets and
 * the extended attribute namespaces a keyset keeps. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "keyfs/keyset.h"

/* The longest path a resolution may reach (PATH_MAX): names the keyset
 * does not hold may pile up beyond KEYSET_PATH_MAX before a ".." pops
 * them, but no real tree comes near. */

static bool name_char_ok(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* One alphabet for both kinds of names: it keeps ".", "..", "/",
 * newlines and non-ASCII bytes out of paths, tar headers and logs. */
static bool component_valid(const char *name, size_t n, size_t max)
{
	size_t i;

	if (n == 0 || n > max || name[0] == '.')
		return false;
	for (i = 0; i < n; i++) {
		if (!name_char_ok(name[i]))
			return false;
	}
	return true;
}

/* Does byte c at offset at of a name need escaping? Outside the
 * alphabet, or a leading '.' (a hidden file, "." or ".."). */
static bool escaped_byte(unsigned char c, size_t at)
{
	return !name_char_ok((char)c) || (at == 0 && c == '.');
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Decodes an escaped name into out (size bytes, at least the name's
 * length + 1): -EINVAL unless every escape is canonical ("%" and two
 * upper-case hex digits of a byte that needs one, never NUL) and every
 * other byte is in the alphabet. Escaping out again gives the name back. */
int keyset_name_unescape(const char *name, char *out, size_t size)
{
	size_t i = 0, o = 0;
	int hi, lo;

	if (name == NULL || name[0] == '\0')
		return -EINVAL;
	while (name[i]) {
		if (o + 1 >= size)
			return -ENAMETOOLONG;
		if (name[i] != '%') {
			if (escaped_byte((unsigned char)name[i], o))
				return -EINVAL;
			out[o++] = name[i++];
			continue;
		}
		hi = hex_value(name[i + 1]);
		lo = hi < 0 ? -1 : hex_value(name[i + 2]);
		if (lo < 0 || (hi | lo) == 0 || !escaped_byte((unsigned char)(hi << 4 | lo), o))
			return -EINVAL;
		out[o++] = (char)(hi << 4 | lo);
		i += 3;
	}
	out[o] = '\0';
	return 0;
}

int keyset_name_escape(const char *raw, char out[static KEYSET_NAME_MAX + 1])
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, o = 0;
	unsigned char c;

	if (raw == NULL || raw[0] == '\0')
		return -EINVAL;
	for (i = 0; raw[i]; i++) {
		c = (unsigned char)raw[i];
		if (o + (escaped_byte(c, i) ? 3 : 1) > KEYSET_NAME_MAX)
			return -ENAMETOOLONG;
		if (!escaped_byte(c, i)) {
			out[o++] = (char)c;
			continue;
		}
		out[o++] = '%';
		out[o++] = hex[c >> 4];
		out[o++] = hex[c & 15];
	}
	out[o] = '\0';
	return 0;
}

bool keyset_name_valid(const char *name)
{
	char raw[KEYSET_NAME_MAX + 1];

	return name != NULL && strnlen(name, KEYSET_NAME_MAX + 1) <= KEYSET_NAME_MAX &&
	       keyset_name_unescape(name, raw, sizeof(raw)) == 0;
}

bool keyset_member_name_valid(const char *name)
{
	const char *p, *slash;
	size_t len, depth = 0;

	if (name == NULL)
		return false;
	len = strnlen(name, KEYSET_PATH_MAX + 1);
	/* KEYSET.ini and KEYSET.sig live beside the top members in the tar. */
	if (len > KEYSET_PATH_MAX || !strcmp(name, KEYSET_INI) || !strcmp(name, KEYSET_SIG))
		return false;
	for (p = name;; p = slash + 1) {
		slash = strchr(p, '/');
		if (!component_valid(p, slash ? (size_t)(slash - p) : strlen(p),
				     KEYSET_MEMBER_NAME_MAX))
			return false;
		if (!slash)
			return true;
		if (++depth > KEYSET_DEPTH_MAX)
			return false;
	}
}

bool keyset_link_valid(const char *name, const char *target)
{
	const char *p, *slash;
	size_t depth = 0, n;

	if (target == NULL || target[0] == '\0' || target[0] == '/' ||
	    strnlen(target, KEYSET_LINK_MAX + 1) > KEYSET_LINK_MAX)
		return false;
	/* The link lives in its member's directory: one level per '/'. */
	for (p = name; (p = strchr(p, '/')) != NULL; p++)
		depth++;
	for (p = target; *p; p = slash ? slash + 1 : p + n) {
		slash = strchr(p, '/');
		n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (depth == 0)
				return false;
			depth--;
		} else if (n > 0 && !(n == 1 && p[0] == '.')) {
			depth++;
		}
		if (!slash)
			break;
	}
	return true;
}

/* Printable ASCII without spaces, '%' or '=': what a pax tar carries as
 * the same name both ways. Writers %-encode the others in SCHILY.xattr
 * names ("a%b" as "a%25b"), and libarchive's reader, which import uses,
 * gives those names back as they stand. */
static bool xattr_name_plain(const char *name)
{
	for (; *name; name++)
		if (*name <= ' ' || *name > '~' || *name == '%' || *name == '=')
			return false;
	return true;
}

bool keyset_xattr_kept(const char *name)
{
	/* user.* holds what administrators set; the two POSIX ACLs who else
	 * may read a key (setfacl -m u:prometheus:r); security.* the labels
	 * a service needs to read its key (SELinux, IMA), which the restore
	 * rules (store_policy.h) narrow down. trusted.* needs CAP_SYS_ADMIN
	 * and the rest of system.* is no file's content. */
	return name != NULL &&
	       ((strncmp(name, "user.", 5) == 0 && name[5] != '\0') ||
		!strcmp(name, "system.posix_acl_access") ||
		!strcmp(name, "system.posix_acl_default") ||
		(strncmp(name, "security.", 9) == 0 && name[9] != '\0')) &&
	       strnlen(name, KEYSET_XATTR_NAME_MAX + 1) <= KEYSET_XATTR_NAME_MAX &&
	       xattr_name_plain(name);
}
