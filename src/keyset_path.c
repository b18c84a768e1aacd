/* Names in a keyset: keyset names, member paths, symlink targets and
 * the extended attribute namespaces a keyset keeps. */
#include <string.h>

#include "keyfs/keyset.h"

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

bool keyset_name_valid(const char *name)
{
	return name != NULL && component_valid(name, strnlen(name, KEYSET_NAME_MAX + 1),
					       KEYSET_NAME_MAX);
}

bool keyset_member_name_valid(const char *name)
{
	const char *p, *slash;
	size_t len, depth = 0;

	if (name == NULL)
		return false;
	len = strnlen(name, KEYSET_PATH_MAX + 1);
	/* KEYSET.ini lives beside the top members in the tar. */
	if (len > KEYSET_PATH_MAX || strcmp(name, KEYSET_INI) == 0)
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

bool keyset_xattr_kept(const char *name)
{
	/* user.* holds what administrators set; security.* the labels a
	 * service needs to read its key (SELinux, IMA). trusted.* needs
	 * CAP_SYS_ADMIN and system.* are ACLs, not carried. */
	return name != NULL &&
	       ((strncmp(name, "user.", 5) == 0 && name[5] != '\0') ||
		(strncmp(name, "security.", 9) == 0 && name[9] != '\0')) &&
	       strnlen(name, KEYSET_XATTR_NAME_MAX + 1) <= KEYSET_XATTR_NAME_MAX;
}
