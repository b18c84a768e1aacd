/* Installing a keyset in place (install.h). The order is what makes it
 * safe: until the first rename nothing a service reads has changed, so
 * any failure before it only removes temporaries; a failed rename puts
 * back what was renamed; a crash after it is finished at the next start
 * from the version journal (store_live.c), so each file ends up either
 * the old or the new one. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/dirwalk.h"
#include "keyfs/replace.h"

#include "install.h"

/* lstat of a member, reaching it without following any link. */
static int member_stat(int dfd, struct keytree_pins *pins, const char *name, struct stat *st)
{
	const char *base;
	int pfd, ret = 0;

	pfd = keytree_open_parent(dfd, pins, name, &base);
	if (pfd < 0)
		return pfd;
	if (fstatat(pfd, base, st, AT_SYMLINK_NOFOLLOW))
		ret = -errno;
	close(pfd);
	return ret;
}

static void member_unlink(int dfd, struct keytree_pins *pins, const struct keyset_member *m)
{
	const char *base;
	int pfd;

	pfd = keytree_open_parent(dfd, pins, m->name, &base);
	if (pfd < 0)
		return;
	unlinkat(pfd, base, m->type == KEYSET_DIR ? AT_REMOVEDIR : 0);
	close(pfd);
}

static int write_one(int dfd, struct keytree_pins *pins, const struct keyset_member *m, bool *made)
{
	struct stat st;
	int ret;

	if (m->type == KEYSET_DIR)
		ret = keytree_dir_make(dfd, pins, m, made);
	else
		ret = member_stat(dfd, pins, m->name, &st);
	if (ret == 0)
		ret = keytree_pins_check_way(pins, m);
	if (m->type == KEYSET_DIR || (ret && ret != -ENOENT))
		return ret;
	/* rename would fail on a directory only after other renames */
	if (ret == 0 && S_ISDIR(st.st_mode))
		return -EISDIR;
	return keytree_member_write_tmp(dfd, pins, m);
}

/* Removes the temporaries and the directories made, deepest first. */
static void undo_writes(int dfd, struct keytree_pins *pins, const struct keyset *ks,
			const bool *made)
{
	size_t i;

	for (i = ks->n; i-- > 0;) {
		if (ks->m[i].type != KEYSET_DIR)
			keytree_member_drop_tmp(dfd, pins, &ks->m[i]);
		else if (made[i])
			member_unlink(dfd, pins, &ks->m[i]);
	}
}

/* The first renamed members of ks back as they were in old. */
static void put_back(int dfd, struct keytree_pins *pins, const struct keyset *ks, size_t renamed,
		     const struct keyset *old)
{
	const struct keyset_member *om;
	size_t i;

	for (i = 0; i < renamed; i++) {
		if (ks->m[i].type == KEYSET_DIR)
			continue;
		om = old ? keyset_find(old, ks->m[i].name) : NULL;
		if (om && om->type != KEYSET_DIR && keytree_member_write_tmp(dfd, pins, om) == 0 &&
		    keytree_member_commit(dfd, pins, om) == 0)
			continue;
		member_unlink(dfd, pins, &ks->m[i]);
	}
}

static int rename_all(int dfd, struct keytree_pins *pins, const struct keyset *ks,
		      const struct keyset *old)
{
	size_t i;
	int ret;

	for (i = 0; i < ks->n; i++) {
		if (ks->m[i].type == KEYSET_DIR)
			continue;
		ret = keytree_member_commit(dfd, pins, &ks->m[i]);
		if (ret) {
			put_back(dfd, pins, ks, i, old);
			return ret;
		}
	}
	return 0;
}

/* What old had and ks has not goes, files first, directories if empty. */
static void remove_extra(int dfd, struct keytree_pins *pins, const struct keyset *ks,
			 const struct keyset *old)
{
	size_t i;

	for (i = old ? old->n : 0; i-- > 0;) {
		if (!keyset_find(ks, old->m[i].name))
			member_unlink(dfd, pins, &old->m[i]);
	}
}

static int finish_dirs(int dfd, struct keytree_pins *pins, const struct keyset *ks)
{
	size_t i;
	int ret = 0;

	for (i = ks->n; ret == 0 && i-- > 0;) {
		if (ks->m[i].type == KEYSET_DIR)
			ret = keytree_dir_finish(dfd, pins, &ks->m[i]);
	}
	return ret ? ret : replace_dir_fsync(dfd, ".");
}

int install_keyset(int dfd, const char *where, const struct keyset *ks, const struct keyset *old,
		   char *why, size_t size)
{
	struct keytree_pins pins = { 0 };
	bool *made = NULL;
	size_t i;
	int ret;

	*why = '\0';
	ret = keytree_owner_check(ks);
	if (ret == 0)
		ret = keytree_check_above(dfd, ks, where, why, size);
	if (ret)
		return ret;
	ret = keytree_pins_init(&pins, ks);
	made = calloc(ks->n + 1, sizeof(*made));
	if (ret || !made) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; ret == 0 && i < ks->n; i++)
		ret = write_one(dfd, &pins, &ks->m[i], &made[i]);
	if (ret == 0)
		ret = rename_all(dfd, &pins, ks, old);
	if (ret) {
		undo_writes(dfd, &pins, ks, made);
		replace_dir_fsync(dfd, ".");
		goto out;
	}
	remove_extra(dfd, &pins, ks, old);
	ret = finish_dirs(dfd, &pins, ks);
	if (ret == 0)
		ret = keytree_top_finish(dfd, ks);
out:
	if (ret == -ESTALE)
		snprintf(pins.why, sizeof(pins.why), "a directory of %s was replaced while it was "
			 "being restored: stopped, nothing written through it", where);
	if (ret && *pins.why && !*why)
		snprintf(why, size, "%s", pins.why);
	keytree_pins_free(&pins);
	free(made);
	return ret;
}

struct cleaner {
	const struct keytree_select *sel;
	char path[KEYSET_PATH_MAX + 1];
	unsigned depth;
};

static int clean_one(int dirfd, const char *name, const struct stat *st, void *arg)
{
	struct cleaner *c = arg;
	size_t len = strlen(c->path);

	if (!S_ISDIR(st->st_mode)) {
		if (keytree_is_tmp(name))
			unlinkat(dirfd, name, 0);
		return 0;
	}
	if (name[0] == '.' || c->depth > KEYSET_DEPTH_MAX ||
	    snprintf(c->path + len, sizeof(c->path) - len, "%s%s", len ? "/" : "", name) >=
	    (int)(sizeof(c->path) - len)) {
		c->path[len] = '\0';
		return 0;
	}
	if (c->sel->want(c->path, true, c->sel->arg)) {
		c->depth++;
		dirwalk_each(dirfd, name, clean_one, c);
		c->depth--;
	}
	c->path[len] = '\0';
	return 0;
}

void install_clean(int dfd, const struct keytree_select *sel)
{
	struct cleaner c = { .sel = sel };

	dirwalk_each(dfd, ".", clean_one, &c);
}
