/* The restore rules for modes and extended attributes (store_policy.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/glob.h"
#include "keyfs/log.h"

#include "store_policy.h"

/* Members named in the log before the rest are only counted. */
#define NAMED_MAX 5

bool store_policy_xattr(const struct store_policy *p, const char *name)
{
	if (strncmp(name, "security.", 9) != 0)
		return true;
	/* A file capability turns a root-owned file into a way to root:
	 * no setting brings it back. */
	if (!strcmp(name, "security.capability"))
		return false;
	/* an xattr name is one component: the member globs match it too */
	return p->xattrs && *p->xattrs && glob_list_match(p->xattrs, name, false);
}

static void drop_xattr(struct keyset_member *m, size_t i)
{
	struct keyset_xattr *x = &m->xattr[i];

	free(x->name);
	if (x->len)
		sodium_memzero(x->value, x->len);
	free(x->value);
	memmove(x, x + 1, (m->nxattr - i - 1) * sizeof(*x));
	m->nxattr--;
}

/* Applies p to one member; says what it changed into out. */
static bool apply(struct keyset_member *m, const struct store_policy *p, char *out, size_t size)
{
	bool changed = false;
	size_t i, len = 0;

	*out = '\0';
	if (m->type == KEYSET_FILE && (m->mode & 0111) &&
	    !(p->executable && *p->executable && glob_list_match(p->executable, m->name, false))) {
		m->mode &= ~(mode_t)0111;
		len += (size_t)snprintf(out, size, "execute bits (not in executable =)");
		changed = true;
	}
	for (i = m->nxattr; i-- > 0;) {
		if (store_policy_xattr(p, m->xattr[i].name))
			continue;
		if (len < size)
			len += (size_t)snprintf(out + len, size - len, "%s%s", len ? ", " : "",
						m->xattr[i].name);
		drop_xattr(m, i);
		changed = true;
	}
	return changed;
}

size_t store_policy_apply(struct keyset *ks, const struct store_policy *p, const char *what,
			  char *first, size_t size)
{
	char desc[256];
	size_t i, n = 0;

	if (first && size)
		*first = '\0';
	for (i = 0; i < ks->n; i++) {
		if (!apply(&ks->m[i], p, desc, sizeof(desc)))
			continue;
		if (n == 0 && first && size)
			snprintf(first, size, "member \"%s\": %s", ks->m[i].name, desc);
		if (++n <= NAMED_MAX)
			log_msg(LOG_WARNING, "keyset %s: member \"%s\": %s left out of the %s", p->name,
				ks->m[i].name, desc, what);
	}
	if (n > NAMED_MAX)
		log_msg(LOG_WARNING, "keyset %s: %zu more members changed the same way", p->name,
			n - NAMED_MAX);
	return n;
}
