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

static bool uid_of(const char *name, uid_t *uid)
{
	char buf[LOOKUP_BUF];
	struct passwd pw, *res = NULL;

	if (getpwnam_r(name, &pw, buf, sizeof(buf), &res) || !res)
		return false;
	*uid = res->pw_uid;
	return true;
}

static bool gid_of(const char *name, gid_t *gid)
{
	char buf[LOOKUP_BUF];
	struct group gr, *res = NULL;

	if (getgrnam_r(name, &gr, buf, sizeof(buf), &res) || !res)
		return false;
	*gid = res->gr_gid;
	return true;
}

/* Members mostly share one owner: the last answer is kept. */
struct cache {
	char user[KEYSET_OWNER_MAX + 1], group[KEYSET_OWNER_MAX + 1];
	bool user_ok, group_ok;
	uid_t uid;
	gid_t gid;
};

static bool map_user(struct cache *c, struct keyset_member *m)
{
	if (!m->user[0])
		return true;
	if (strcmp(c->user, m->user)) {
		snprintf(c->user, sizeof(c->user), "%s", m->user);
		c->user_ok = uid_of(m->user, &c->uid);
	}
	if (c->user_ok)
		m->uid = c->uid;
	return c->user_ok;
}

static bool map_group(struct cache *c, struct keyset_member *m)
{
	if (!m->group[0])
		return true;
	if (strcmp(c->group, m->group)) {
		snprintf(c->group, sizeof(c->group), "%s", m->group);
		c->group_ok = gid_of(m->group, &c->gid);
	}
	if (c->group_ok)
		m->gid = c->gid;
	return c->group_ok;
}

void keyset_owners_local(struct keyset *ks, struct keyset_owner_report *r)
{
	struct cache c = { 0 };
	bool user, group;
	size_t i;

	memset(r, 0, sizeof(*r));
	for (i = 0; i < ks->n; i++) {
		struct keyset_member *m = &ks->m[i];

		if (!m->owned)
			continue;
		user = map_user(&c, m);
		group = map_group(&c, m);
		if (user && group)
			continue;
		r->members++;
		if (!user && !r->user[0])
			snprintf(r->user, sizeof(r->user), "%s", m->user);
		if (!group && !r->group[0])
			snprintf(r->group, sizeof(r->group), "%s", m->group);
	}
}
