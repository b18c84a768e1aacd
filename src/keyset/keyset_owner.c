/* Owners by name (keyset_owner.h). */
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "keyfs/keyset_owner.h"

/* getpwnam_r()'s and getgrnam_r()'s buffer: an entry with a long member
 * list needs more than a passwd line does. */
#define LOOKUP_BUF 16384

static bool uid_of(const char *name, unsigned *id)
{
	char buf[LOOKUP_BUF];
	struct passwd pw, *res = NULL;

	if (getpwnam_r(name, &pw, buf, sizeof(buf), &res) || !res)
		return false;
	*id = res->pw_uid;
	return true;
}

static bool gid_of(const char *name, unsigned *id)
{
	char buf[LOOKUP_BUF];
	struct group gr, *res = NULL;

	if (getgrnam_r(name, &gr, buf, sizeof(buf), &res) || !res)
		return false;
	*id = res->gr_gid;
	return true;
}

_Static_assert(sizeof(uid_t) == sizeof(unsigned) && sizeof(gid_t) == sizeof(unsigned),
	       "uid_t and gid_t are unsigned int");

/* One kind of owner; members mostly share one, so the last answer is
 * kept. */
struct lookup {
	bool (*of)(const char *name, unsigned *id);
	char name[KEYSET_OWNER_MAX + 1];
	bool ok;
	unsigned id;
};

/* *id becomes name's number here; false (and *id kept) if name is not
 * known here. No name recorded: nothing to look up. */
static bool map(struct lookup *l, const char *name, unsigned *id)
{
	if (!name[0])
		return true;
	if (strcmp(l->name, name)) {
		snprintf(l->name, sizeof(l->name), "%s", name);
		l->ok = l->of(name, &l->id);
	}
	if (l->ok)
		*id = l->id;
	return l->ok;
}

void keyset_owners_local(struct keyset *ks, struct keyset_owner_report *r)
{
	struct lookup users = { .of = uid_of }, groups = { .of = gid_of };
	bool user, group;
	size_t i;

	memset(r, 0, sizeof(*r));
	/* ks->top after the members: the same names, mapped the same way */
	for (i = 0; i <= ks->n; i++) {
		struct keyset_member *m = i < ks->n ? &ks->m[i] : &ks->top;

		if (!m->owned)
			continue;
		user = map(&users, m->user, &m->uid);
		group = map(&groups, m->group, &m->gid);
		if (user && group)
			continue;
		r->members++;
		if (!user && !r->user[0])
			snprintf(r->user, sizeof(r->user), "%s", m->user);
		if (!group && !r->group[0])
			snprintf(r->group, sizeof(r->group), "%s", m->group);
	}
}
