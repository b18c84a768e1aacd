/* A keyset as a tree (keyset.h): every member's directory a directory
 * member, every link resolving inside the keyset. Apart from the model
 * (keyset.c) and the path rules (keyset_path.c), both of which it uses. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "keyfs/keyset.h"

/* The longest path a resolution may reach, links expanded. */
#define RESOLVE_PATH_MAX 4096

/* Resolving a link member's target against the keyset's own members,
 * as the kernel would resolve it once the keyset is installed: a
 * component that is a link member is replaced by that link's target
 * (from the link's directory), ".." pops a component, and the walk may
 * never climb above the keyset's top. A lexical check of each target
 * alone misses chains (conf/l -> .. and conf/k -> l/../../x): only the
 * whole tree says where a link leads. */
struct resolve {
	const struct keyset *ks;
	char at[RESOLVE_PATH_MAX];	/* reached so far; "" is the top */
	size_t len;
	unsigned follows;		/* links followed, all nesting levels */
	const char *via;		/* the last link followed, for the reason */
};

static int resolve_target(struct resolve *r, const char *target);

static int step_up(struct resolve *r)
{
	const char *slash;

	if (r->len == 0)
		return -EXDEV;
	slash = memrchr(r->at, '/', r->len);
	r->len = slash ? (size_t)(slash - r->at) : 0;
	r->at[r->len] = '\0';
	return 0;
}

/* Enters name. A name the keyset does not hold is taken as a plain
 * directory or file (dangling inside the keyset is no escape); a link
 * member is followed, like the kernel does, up to its limit. */
static int step_down(struct resolve *r, const char *name, size_t n)
{
	const struct keyset_member *m;
	size_t old = r->len;

	if (old + 1 + n >= sizeof(r->at))
		return -ENAMETOOLONG;
	if (old)
		r->at[r->len++] = '/';
	memcpy(r->at + r->len, name, n);
	r->len += n;
	r->at[r->len] = '\0';
	m = keyset_find(r->ks, r->at);
	if (!m || m->type != KEYSET_LINK)
		return 0;
	if (++r->follows > KEYSET_LINK_FOLLOW_MAX)
		return -ELOOP;
	r->len = old;
	r->at[old] = '\0';
	r->via = m->name;
	return resolve_target(r, m->link);
}

/* Recursion is bounded by follows: one level per link followed. */
static int resolve_target(struct resolve *r, const char *target)
{
	const char *p, *slash;
	size_t n;
	int ret = 0;

	if (target == NULL || target[0] == '/')
		return -EXDEV;
	for (p = target; ret == 0 && *p; p += n + (slash != NULL)) {
		slash = strchr(p, '/');
		n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.'))
			continue;
		if (n == 2 && p[0] == '.' && p[1] == '.')
			ret = step_up(r);
		else
			ret = step_down(r, p, n);
	}
	return ret;
}

static void link_why(const struct resolve *r, const char *name, int err, char *why, size_t size)
{
	if (why == NULL || size == 0)
		return;
	if (err == -ELOOP)
		snprintf(why, size, "member \"%s\": a symlink through more than %d symlinks "
			 "(a loop, or nested too deep)", name, KEYSET_LINK_FOLLOW_MAX);
	else if (err == -ENAMETOOLONG)
		snprintf(why, size, "member \"%s\": a symlink resolving to a path over %d bytes",
			 name, RESOLVE_PATH_MAX - 1);
	else if (r->via)
		snprintf(why, size, "member \"%s\": a symlink leaving the keyset through "
			 "symlink \"%s\"", name, r->via);
	else
		snprintf(why, size, "member \"%s\": a symlink leaving the keyset", name);
}

int keyset_link_inside(const struct keyset *ks, const struct keyset_member *m, char *why,
		       size_t size)
{
	/* The member itself counts, as it does for open() of it. */
	struct resolve r = { .ks = ks, .follows = 1 };
	const char *slash = strrchr(m->name, '/');
	int ret;

	/* Its target is walked from its directory. */
	r.len = slash ? (size_t)(slash - m->name) : 0;
	memcpy(r.at, m->name, r.len);
	r.at[r.len] = '\0';
	ret = resolve_target(&r, m->link);
	if (ret)
		link_why(&r, m->name, ret, why, size);
	return ret ? -EINVAL : 0;
}

/* Writers create a member inside its directory without ever following
 * a link: the directory must be one of ours. */
static int check_dir(const struct keyset *ks, const struct keyset_member *m, char *why,
		     size_t size)
{
	const struct keyset_member *dir;
	const char *slash = strrchr(m->name, '/');
	char path[KEYSET_PATH_MAX + 1];

	if (!slash)
		return 0;
	snprintf(path, sizeof(path), "%.*s", (int)(slash - m->name), m->name);
	dir = keyset_find(ks, path);
	if (dir && dir->type == KEYSET_DIR)
		return 0;
	if (why && size)
		snprintf(why, size, "member \"%s\": its directory is %s", m->name,
			 dir ? "not a directory of the keyset" : "not in the keyset");
	return -EINVAL;
}

int keyset_check_tree_why(const struct keyset *ks, char *why, size_t size)
{
	size_t i;
	int ret = 0;

	for (i = 0; ret == 0 && i < ks->n; i++)
		ret = check_dir(ks, &ks->m[i], why, size);
	/* Every directory is known now, so links resolve against the tree. */
	for (i = 0; ret == 0 && i < ks->n; i++) {
		if (ks->m[i].type == KEYSET_LINK)
			ret = keyset_link_inside(ks, &ks->m[i], why, size);
	}
	return ret;
}

int keyset_check_tree(const struct keyset *ks)
{
	return keyset_check_tree_why(ks, NULL, 0);
}

