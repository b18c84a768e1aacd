/* The keystore contract: the same checks over every backend (the
 * directory store and the in-memory one built for tests): list, read,
 * stamp and change detection, restore outcomes, versions, activate, and
 * no crash leftovers after a reopen. A new backend is added to the table
 * in main() and must pass unchanged. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/state.h"
#include "keyfs/store.h"
#include "store_mem.h"
#include "tap.h"

struct backend {
	const char *name;
	store_open_fn *open;
	/* leaves what a crash mid-restore would; NULL if nothing can be left */
	void (*crash)(const char *path, const struct state *state);
	/* changes the active keys as an administrator would */
	void (*edit)(struct store *s, const char *path, const char *name);
};

static void make(struct keyset *ks, const char *name, const char *content)
{
	memset(ks, 0, sizeof(*ks));
	snprintf(ks->name, sizeof(ks->name), "%s", name);
	keyset_add(ks, "key", 0600, 1700000000, (const uint8_t *)content, strlen(content));
	keyset_add(ks, "key.pub", 0644, 1700000000, (const uint8_t *)"pub", 3);
	keyset_sort(ks);
}

static bool holds(struct store *s, const char *name, const char *content)
{
	struct keyset want, got = { 0 };
	bool same;

	make(&want, name, content);
	same = !s->ops->read(s->priv, name, &got) && keyset_equal(&want, &got);
	keyset_clear(&want);
	keyset_clear(&got);
	return same;
}

static int put(struct store *s, const char *name, const char *content, struct store_put *res)
{
	struct keyset ks;
	int ret;

	make(&ks, name, content);
	ret = store_put(s, &ks, res);
	keyset_clear(&ks);
	return ret;
}

static size_t versions(struct store *s, const char *name, unsigned *last)
{
	unsigned *v;
	size_t n;

	if (store_versions(s, name, &v, &n))
		return (size_t)-1;
	*last = n ? v[n - 1] : 0;
	free(v);
	return n;
}

static void check_restore(const struct backend *b, struct store *s)
{
	struct store_put res;
	uint64_t a, c;
	unsigned last;
	char **names;
	size_t n;

	tap_ok(!s->ops->list(s->priv, &names, &n) && n == 0, "%s: a new store lists nothing", b->name);
	store_names_free(names, n);
	TAP_EQ_INT(s->ops->read(s->priv, "k", &(struct keyset){ 0 }), -ENOENT, "%s: read of none", b->name);
	TAP_EQ_INT(s->ops->stamp(s->priv, "k", &a), -ENOENT, "%s: stamp of none", b->name);

	tap_ok(!put(s, "k", "one", &res) && res.outcome == STORE_CREATED, "%s: absent -> created",
	       b->name);
	tap_ok(!s->ops->list(s->priv, &names, &n) && n == 1 && !strcmp(names[0], "k"),
	       "%s: it is listed", b->name);
	store_names_free(names, n);
	tap_ok(holds(s, "k", "one"), "%s: and reads back", b->name);
	tap_ok(!s->ops->stamp(s->priv, "k", &a) && !s->ops->stamp(s->priv, "k", &c) && a == c,
	       "%s: the stamp is stable", b->name);

	tap_ok(!put(s, "k", "one", &res) && res.outcome == STORE_UNCHANGED, "%s: same -> unchanged",
	       b->name);
	tap_ok(!s->ops->stamp(s->priv, "k", &c) && a == c, "%s: ... stamp unchanged", b->name);
	tap_ok(!put(s, "k", "two", &res) && res.outcome == STORE_VERSIONED && res.version == 1,
	       "%s: different -> inactive version 1", b->name);
	tap_ok(holds(s, "k", "one"), "%s: ... the active keys untouched", b->name);
	tap_ok(!put(s, "k", "two", &res) && res.outcome == STORE_KNOWN && res.version == 1,
	       "%s: a known version -> known", b->name);
	tap_ok(versions(s, "k", &last) == 1 && last == 1, "%s: one version, 1", b->name);

	tap_ok(!store_activate(s, "k", 1, &last) && last == 2, "%s: activate 1 keeps the old as 2 (%u)",
	       b->name, last);
	tap_ok(holds(s, "k", "two"), "%s: ... version 1 is active", b->name);
	tap_ok(!s->ops->stamp(s->priv, "k", &c) && a != c, "%s: ... the stamp moved", b->name);
	tap_ok(versions(s, "k", &last) == 1 && last == 2, "%s: ... the old keys are version 2",
	       b->name);
	TAP_EQ_INT(store_activate(s, "k", 9, &last), -ENOENT, "%s: activate a missing version", b->name);
}

/* A key tree: directories, a symlink into them, an xattr, an owner. */
static void make_tree(struct keyset *ks, const char *target, uid_t uid)
{
	struct keyset_meta dir = { .type = KEYSET_DIR, .mode = 0755, .mtime = 1700000000,
				   .owned = true, .uid = uid, .gid = 0 };
	struct keyset_meta file = dir, link = dir;
	struct keyset_member *m = NULL;

	memset(ks, 0, sizeof(*ks));
	snprintf(ks->name, sizeof(ks->name), "tree");
	file.type = KEYSET_FILE;
	file.mode = 0400;
	link.type = KEYSET_LINK;
	link.link = target;
	keyset_add_member(ks, "archive", &dir, NULL, 0, NULL);
	keyset_add_member(ks, "archive/example.org", &dir, NULL, 0, NULL);
	keyset_add_member(ks, "archive/example.org/cert1.pem", &file, (const uint8_t *)"c1", 2, NULL);
	keyset_add_member(ks, "archive/example.org/cert2.pem", &file, (const uint8_t *)"c2", 2, &m);
	if (m)
		keyset_add_xattr(m, "user.purpose", "test", 4);
	dir.mode = 0500;
	keyset_add_member(ks, "live", &dir, NULL, 0, NULL);
	keyset_add_member(ks, "live/example.org", &dir, NULL, 0, NULL);
	keyset_add_member(ks, "live/example.org/cert.pem", &link, NULL, 0, NULL);
	keyset_sort(ks);
}

static bool holds_tree(struct store *s, const char *target, uid_t uid)
{
	struct keyset want, got = { 0 };
	bool same;

	make_tree(&want, target, uid);
	same = !s->ops->read(s->priv, "tree", &got) && keyset_equal(&want, &got) &&
	       got.n == 7 && got.m[6].type == KEYSET_LINK && got.m[3].nxattr == 1 &&
	       got.m[0].owned && got.m[0].uid == uid;
	keyset_clear(&want);
	keyset_clear(&got);
	return same;
}

static int put_tree(struct store *s, const char *target, uid_t uid, struct store_put *res)
{
	struct keyset ks;
	int ret;

	make_tree(&ks, target, uid);
	ret = store_put(s, &ks, res);
	keyset_clear(&ks);
	return ret;
}

static void check_tree(const struct backend *b, struct store *s)
{
	static const char one[] = "../../archive/example.org/cert1.pem";
	static const char two[] = "../../archive/example.org/cert2.pem";
	/* another owner where this process may give one */
	uid_t uid = geteuid() == 0 ? 1234 : geteuid();
	struct store_put res;
	unsigned last;

	tap_ok(!put_tree(s, one, uid, &res) && res.outcome == STORE_CREATED,
	       "%s: a tree restored", b->name);
	tap_ok(holds_tree(s, one, uid), "%s: ... reads back with types, owner, xattr", b->name);
	tap_ok(!put_tree(s, one, uid, &res) && res.outcome == STORE_UNCHANGED,
	       "%s: the same tree -> unchanged", b->name);
	tap_ok(!put_tree(s, two, uid, &res) && res.outcome == STORE_VERSIONED,
	       "%s: another link target -> a version", b->name);
	tap_ok(holds_tree(s, one, uid), "%s: ... the active tree untouched", b->name);
	tap_ok(!store_activate(s, "tree", res.version, &last), "%s: activate it", b->name);
	tap_ok(holds_tree(s, two, uid), "%s: ... the new link is active", b->name);
	if (geteuid() == 0) {
		tap_ok(!put_tree(s, one, 0, &res) && res.outcome == STORE_VERSIONED,
		       "%s: another owner -> a version", b->name);
	}
}

static void check_changes(const struct backend *b, struct store *s, const char *path)
{
	uint64_t a, c;

	s->ops->stamp(s->priv, "k", &a);
	b->edit(s, path, "k");
	tap_ok(!s->ops->stamp(s->priv, "k", &c) && a != c, "%s: an edit moves the stamp", b->name);
	tap_ok(holds(s, "k", "edited"), "%s: and reads as edited", b->name);
}

static void run(const struct backend *b, const char *path, const struct state *state)
{
	struct store s = { 0 };
	char **names;
	size_t n;

	if (!tap_ok(!b->open(path, state, &s), "%s: open", b->name))
		return;
	check_restore(b, &s);
	check_tree(b, &s);
	check_changes(b, &s, path);
	if (b->crash) {
		b->crash(path, state);
		store_close(&s);
		tap_ok(!b->open(path, state, &s), "%s: reopen after a crash", b->name);
		tap_ok(!s.ops->list(s.priv, &names, &n) && n == 2, "%s: leftovers are not keysets",
		       b->name);
		store_names_free(names, n);
		tap_ok(faccessat(state->fd, STATE_TMP "/k.deadbeef", F_OK, 0) != 0,
		       "%s: and are gone", b->name);
	}
	store_close(&s);
}

static void dir_crash(const char *path, const struct state *state)
{
	(void)path;
	mkdirat(state->fd, STATE_TMP "/k.deadbeef", 0700);
	close(openat(state->fd, STATE_TMP "/k.deadbeef/key", O_WRONLY | O_CREAT, 0600));
	/* a tree half written: a directory already made read-only */
	mkdirat(state->fd, STATE_TMP "/k.deadbeef/live", 0700);
	close(openat(state->fd, STATE_TMP "/k.deadbeef/live/.cert.pem.keyfs-new",
		     O_WRONLY | O_CREAT, 0600));
	fchmodat(state->fd, STATE_TMP "/k.deadbeef/live", 0500, 0);
}

static void dir_edit(struct store *s, const char *path, const char *name)
{
	char p[512];
	FILE *f;

	(void)s;
	snprintf(p, sizeof(p), "%s/%s/key", path, name);
	f = fopen(p, "w");
	if (f) {
		fputs("edited", f);
		fclose(f);
	}
}

static void mem_edit(struct store *s, const char *path, const char *name)
{
	struct keyset ks;

	(void)path;
	make(&ks, name, "edited");
	store_mem_set(s, &ks, false);
	keyset_clear(&ks);
}

int main(void)
{
	static const struct backend backends[] = {
		{ "dir", store_dir_open, dir_crash, dir_edit },
		{ "mem", store_mem_open, NULL, mem_edit },
	};
	char root[] = "/tmp/keyfs-test-contract.XXXXXX", path[600];
	struct state state;
	size_t i;

	if (sodium_init() < 0 || !mkdtemp(root)) {
		tap_ok(false, "setup");
		return tap_done();
	}
	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", root, backends[i].name);
		mkdir(path, 0700);
		snprintf(path, sizeof(path), "%s/%s/.keyfs", root, backends[i].name);
		if (!tap_ok(!state_open(&state, path), "%s: state directory", backends[i].name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", root, backends[i].name);
		run(&backends[i], path, &state);
		state_close(&state);
	}
	snprintf(path, sizeof(path), "rm -rf %s", root);
	tap_ok(!system(path), "temp dir removed");
	return tap_done();
}
