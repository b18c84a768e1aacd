/* The keystore contract: the same checks over every backend (the
 * directory store and the in-memory one built for tests) and over the
 * stacks the daemon serves (src/fs/main.c: store_open(), then
 * storewatch_wrap(), then store_live_open(), then the watcher's thread):
 * list, read, stamp and change detection, restore outcomes, versions,
 * activate, and no crash leftovers after a reopen. A new backend or
 * layer is added to the table in main() and must pass unchanged, but
 * for the exceptions store.h documents, which its row names (X_*) and
 * the output reports as skipped. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/config.h"
#include "keyfs/state.h"
#include "keyfs/store.h"
#include "keyfs/store_live.h"
#include "keyfs/storewatch.h"

#include "store_mem.h"
#include "tap.h"

/* Checks a row may skip, each for a reason store.h documents. */
enum except {
	/* live keysets are named by the configuration: listed always */
	X_LIST = 1 << 0,
	/* a configured live keyset is never absent */
	X_NONE = 1 << 1,
};

static const char *const except_why[] = {
	"a live keyset is listed whenever it is configured, restored or not",
	"a live keyset is never absent: with no files its read is an error of the keyset, "
	"its stamp that of an empty tree",
};

struct backend {
	const char *name;
	bool mem;		/* the in-memory backend, not config_backend()'s */
	bool watch;		/* storewatch_wrap() and its thread */
	bool live;		/* store_live_open() */
	bool live_keysets;	/* k and tree are [keyset] sections with a path */
	unsigned except;	/* enum except: checks this row skips */
	/* leaves what a crash mid-restore would; NULL if nothing can be left */
	void (*crash)(const char *path, const struct state *state);
	/* changes the active keys as an administrator would */
	void (*edit)(struct store *s, const char *path, const char *name);
};

/* Whether b skips the check what; says so in the output if it does. */
static bool skip(const struct backend *b, enum except x, const char *what)
{
	unsigned i = 0;

	if (!(b->except & x))
		return false;
	while (!(x & (1u << i)))
		i++;
	tap_ok(true, "# SKIP %s: %s: %s", b->name, what, except_why[i]);
	return true;
}

/* The store as the daemon opens it (src/fs/main.c keyfs_open() and
 * its start), with the layers of b; cfg must outlive *s. */
static int open_stack(const struct backend *b, const struct config *cfg,
		      const struct state *state, struct store *s)
{
	struct storewatch *w = NULL;
	int ret;

	if (b->mem)
		ret = store_mem_open(cfg->store, state, s);
	else
		ret = store_open(config_backend(cfg), cfg->store, state, s);
	if (ret == 0 && b->watch)
		ret = storewatch_wrap(s, &w);
	if (ret == 0 && b->live)
		ret = store_live_open(s, cfg, state);
	/* the daemon starts the thread last, after it forked */
	if (ret == 0 && w)
		ret = storewatch_start(w);
	if (ret)
		store_close(s); /* the watcher with it */
	return ret;
}

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
	struct store_put res = { 0 };
	uint64_t a, c;
	unsigned last;
	char **names;
	size_t n;

	if (!skip(b, X_LIST, "a new store lists nothing")) {
		tap_ok(!s->ops->list(s->priv, &names, &n) && n == 0, "%s: a new store lists nothing",
		       b->name);
		store_list_free(names);
	}
	if (!skip(b, X_NONE, "read of none"))
		TAP_EQ_INT(s->ops->read(s->priv, "k", &(struct keyset){ 0 }), -ENOENT,
			   "%s: read of none", b->name);
	if (!skip(b, X_NONE, "stamp of none"))
		TAP_EQ_INT(s->ops->stamp(s->priv, "k", &a), -ENOENT, "%s: stamp of none", b->name);

	tap_ok(!put(s, "k", "one", &res) && res.outcome == STORE_CREATED, "%s: absent -> created",
	       b->name);
	if (!skip(b, X_LIST, "it is listed")) {
		tap_ok(!s->ops->list(s->priv, &names, &n) && n == 1 && !strcmp(names[0], "k"),
		       "%s: it is listed", b->name);
		store_list_free(names);
	}
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
	struct store_put res = { 0 };
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

static void run(const struct backend *b, const struct config *cfg, const struct state *state)
{
	const char *path = cfg->store;
	struct store s = { 0 };
	char **names;
	size_t n;

	if (!tap_ok(!open_stack(b, cfg, state, &s), "%s: open", b->name))
		return;
	check_restore(b, &s);
	check_tree(b, &s);
	check_changes(b, &s, path);
	if (b->crash) {
		b->crash(path, state);
		store_close(&s);
		if (!tap_ok(!open_stack(b, cfg, state, &s), "%s: reopen after a crash", b->name))
			return;
		tap_ok(!s.ops->list(s.priv, &names, &n) && n == 2, "%s: leftovers are not keysets",
		       b->name);
		store_list_free(names);
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

/* A live keyset's files are where its [keyset] path says: PATH.keys/NAME
 * (live_config()), beside the store, not in it. */
static void live_edit(struct store *s, const char *path, const char *name)
{
	char keys[512];

	snprintf(keys, sizeof(keys), "%s.keys", path);
	dir_edit(s, keys, name);
}

/* The configuration of b's row over the store at path: k and tree as
 * live keysets, their directories made, for a row that has them. */
static int row_config(const struct backend *b, const char *path, struct config *cfg)
{
	static const char *const names[] = { "k", "tree" };
	char ini[2048], dir[512], err[256];
	const char *why;
	size_t i, len = 0;
	int ret;

	config_defaults(cfg);
	ret = config_set(cfg, "store", path, &why);
	if (ret || !b->live_keysets)
		return ret;
	snprintf(dir, sizeof(dir), "%s.keys", path);
	mkdir(dir, 0700);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(dir, sizeof(dir), "%s.keys/%s", path, names[i]);
		mkdir(dir, 0700);
		len += (size_t)snprintf(ini + len, sizeof(ini) - len,
					"[keyset %s]\npath = %s\ninclude = **\n", names[i], dir);
	}
	ret = config_parse(cfg, "contract.ini", ini, err, sizeof(err));
	if (ret == 0)
		ret = config_check(cfg, &why);
	return ret;
}

int main(void)
{
	static const struct backend backends[] = {
		{ "dir", .crash = dir_crash, .edit = dir_edit },
		{ "mem", .mem = true, .edit = mem_edit },
		{ "dir+watch", .watch = true, .crash = dir_crash, .edit = dir_edit },
		/* no tree of directories: the watcher leaves it as it is */
		{ "mem+watch", .mem = true, .watch = true, .edit = mem_edit },
		/* what a daemon without [keyset] sections serves */
		{ "dir+watch+live", .watch = true, .live = true, .crash = dir_crash,
		  .edit = dir_edit },
		/* a daemon whose k and tree are live keysets over dir+watch */
		{ "live", .watch = true, .live = true, .live_keysets = true,
		  .except = X_LIST | X_NONE,
		  .crash = dir_crash, .edit = live_edit },
	};
	char root[] = "/tmp/keyfs-test-contract.XXXXXX", path[256];
	struct config cfg;
	struct state state;
	size_t i;

	if (sodium_init() < 0 || !mkdtemp(root)) {
		tap_ok(false, "setup");
		return tap_done();
	}
	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		const struct backend *b = &backends[i];

		snprintf(path, sizeof(path), "%s/%s", root, b->name);
		mkdir(path, 0700);
		if (!tap_ok(!row_config(b, path, &cfg), "%s: configuration", b->name)) {
			config_free(&cfg);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s/.keyfs", root, b->name);
		if (tap_ok(!state_open(&state, path), "%s: state directory", b->name)) {
			run(b, &cfg, &state);
			state_close(&state);
		}
		config_free(&cfg);
	}
	tap_ok(!tap_rmtree(root), "temp dir removed");
	return tap_done();
}
