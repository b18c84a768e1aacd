/* Unit tests for store_dir.c, through the store.h interface, on a private
 * temp directory: listing, reading, the version stamp, the refusal of
 * anything that is not a flat regular file, and metadata. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/dirwalk.h"
#include "keyfs/keyset.h"
#include "keyfs/meta.h"
#include "keyfs/state.h"
#include "keyfs/store.h"

#include "tap.h"

#define T0 1700000000 /* 2023-11-14T22:13:20Z */

static char root[64];
static struct state state;

static void path_of(char *out, size_t size, const char *rel)
{
	snprintf(out, size, "%s/%s", root, rel);
}

static void mkdir_rel(const char *rel)
{
	char p[PATH_MAX];

	path_of(p, sizeof(p), rel);
	if (mkdir(p, 0700))
		tap_ok(false, "mkdir %s: %m", rel);
}

/* Writes rel with data (len bytes), mode and mtime (0: leave as is). */
static void write_rel(const char *rel, const void *data, size_t len, mode_t mode, time_t mtime)
{
	char p[PATH_MAX];
	int fd;

	path_of(p, sizeof(p), rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (len && write(fd, data, len) != (ssize_t)len) || fchmod(fd, mode)) {
		tap_ok(false, "write %s: %m", rel);
		if (fd >= 0)
			close(fd);
		return;
	}
	if (mtime) {
		struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };

		futimens(fd, ts);
	}
	close(fd);
}

static void set_mtime_rel(const char *rel, time_t mtime)
{
	struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
	char p[PATH_MAX];

	path_of(p, sizeof(p), rel);
	if (utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW))
		tap_ok(false, "utimensat %s: %m", rel);
}

static void unlink_rel(const char *rel)
{
	char p[PATH_MAX];

	path_of(p, sizeof(p), rel);
	if (unlink(p))
		tap_ok(false, "unlink %s: %m", rel);
}

static bool member_is(const struct keyset_member *m, const char *name, mode_t mode, const char *data)
{
	size_t len = strlen(data);

	return !strcmp(m->name, name) && m->mode == mode && m->len == len &&
	       (len == 0 ? m->data == NULL : memcmp(m->data, data, len) == 0);
}

static int stamp(struct store *s, const char *name, uint64_t *out)
{
	return s->ops->stamp(s->priv, name, out);
}

/* The store of most tests:
 *   alpha/k                 0400
 *   beta/{id,id.pub,empty}  0600, 0644, 0640
 *   gamma/                  (empty keyset)
 *   "bad name"/             (escaped: bad%20name)
 * and things list() must skip: .hidden/, a regular file, a symlink to a
 * keyset. */
static void populate(void)
{
	char p[PATH_MAX];

	mkdir_rel("beta");
	write_rel("beta/id", "secret-key\n", 11, 0600, T0 + 10);
	write_rel("beta/id.pub", "public-key\n", 11, 0644, T0 + 20);
	write_rel("beta/empty", "", 0, 0640, T0);
	mkdir_rel("gamma");
	mkdir_rel("alpha");
	write_rel("alpha/k", "k", 1, 0400, T0);
	mkdir_rel(".hidden");
	mkdir_rel("bad name");
	write_rel("notadir", "x", 1, 0600, 0);
	path_of(p, sizeof(p), "link");
	if (symlink("alpha", p))
		tap_ok(false, "symlink: %m");
}

static void test_list(struct store *s)
{
	char **names = NULL;
	size_t n = 0, i;
	int ret;

	ret = s->ops->list(s->priv, &names, &n);
	TAP_EQ_INT(ret, 0, "list");
	TAP_EQ_INT(n, 4, "list finds the four keysets");
	tap_ok(n == 4 && !strcmp(names[0], "alpha") && !strcmp(names[1], "bad%20name") &&
	       !strcmp(names[2], "beta") && !strcmp(names[3], "gamma"),
	       "list is sorted: alpha bad%%20name beta gamma");
	for (i = 0; i < n; i++)
		tap_ok(strcmp(names[i], ".hidden") && strcmp(names[i], "bad name") &&
		       strcmp(names[i], "notadir") && strcmp(names[i], "link") &&
		       strcmp(names[i], ".keyfs"), "list entry %zu (%s) is a keyset", i, names[i]);
	store_list_free(names);
}

static void test_read(struct store *s)
{
	struct keyset ks;
	int ret;

	memset(&ks, 0, sizeof(ks));
	ret = s->ops->read(s->priv, "beta", &ks);
	TAP_EQ_INT(ret, 0, "read beta");
	tap_ok(!strcmp(ks.name, "beta"), "read sets the keyset name");
	TAP_EQ_INT(ks.n, 3, "beta has three members");
	if (ks.n == 3) {
		tap_ok(member_is(&ks.m[0], "empty", 0640, ""), "member 0: empty, 0640, no data");
		tap_ok(member_is(&ks.m[1], "id", 0600, "secret-key\n"), "member 1: id, 0600, its data");
		tap_ok(member_is(&ks.m[2], "id.pub", 0644, "public-key\n"), "member 2: id.pub, 0644, its data");
		TAP_EQ_INT(ks.m[1].mtime, T0 + 10, "member mtime from the file");
		TAP_EQ_INT(keyset_mtime(&ks), T0 + 20, "keyset mtime is the newest member's");
	}
	keyset_clear(&ks);

	ret = s->ops->read(s->priv, "alpha", &ks);
	tap_ok(ret == 0 && ks.n == 1 && member_is(&ks.m[0], "k", 0400, "k"),
	       "read alpha: one read-only member (ret %d)", ret);
	keyset_clear(&ks);

	ret = s->ops->read(s->priv, "gamma", &ks);
	tap_ok(ret == 0 && ks.n == 0, "read of an empty keyset: no members (ret %d)", ret);
	keyset_clear(&ks);

	/* Reading twice into the same keyset replaces, never appends. */
	s->ops->read(s->priv, "beta", &ks);
	ret = s->ops->read(s->priv, "alpha", &ks);
	tap_ok(ret == 0 && ks.n == 1 && !strcmp(ks.name, "alpha"),
	       "read into a used keyset replaces its members (n %zu)", ks.n);
	keyset_clear(&ks);
}

static void test_stamp(struct store *s)
{
	uint64_t a, b, c, d, e;
	int ret;

	ret = stamp(s, "beta", &a);
	TAP_EQ_INT(ret, 0, "stamp beta");
	stamp(s, "beta", &b);
	tap_ok(a == b, "stamp is stable when nothing changes");
	stamp(s, "alpha", &c);
	tap_ok(a != c, "different keysets have different stamps");
	stamp(s, "gamma", &d);
	ret = stamp(s, "gamma", &e);
	tap_ok(ret == 0 && d == e, "stamp of an empty keyset is stable");

	/* Content with a different size. */
	write_rel("beta/id", "secret-key-2\n", 13, 0600, T0 + 10);
	stamp(s, "beta", &b);
	tap_ok(a != b, "stamp changes when a member's content changes size");
	stamp(s, "beta", &c);
	tap_ok(b == c, "... and is stable again");

	/* Same size, rewritten in place right away: only the timestamps
	 * can tell. Holds where file times are fine-grained (Linux >= 6.13
	 * multigrain timestamps, tmpfs); with coarse timestamps two writes
	 * in one clock tick are indistinguishable to a stat-only stamp. */
	write_rel("beta/id", "secret-key-x\n", 13, 0600, 0);
	stamp(s, "beta", &c);
	write_rel("beta/id", "secret-key-y\n", 13, 0600, 0);
	stamp(s, "beta", &d);
	tap_ok(c != d, "stamp changes on a same-size in-place rewrite");
	write_rel("beta/id", "secret-key-2\n", 13, 0600, T0 + 10);
	stamp(s, "beta", &b);

	/* Only the mtime. */
	set_mtime_rel("beta/id", T0 + 11);
	stamp(s, "beta", &c);
	tap_ok(b != c, "stamp changes when a member's mtime changes");

	/* Only the mode. */
	{
		char p[PATH_MAX];

		path_of(p, sizeof(p), "beta/id.pub");
		chmod(p, 0600);
		stamp(s, "beta", &d);
		tap_ok(c != d, "stamp changes when a member's mode changes");
		chmod(p, 0644);
	}

	/* Added, then removed. */
	stamp(s, "beta", &c);
	write_rel("beta/new", "n", 1, 0600, T0);
	stamp(s, "beta", &d);
	tap_ok(c != d, "stamp changes when a member is added");
	unlink_rel("beta/new");
	stamp(s, "beta", &e);
	tap_ok(d != e, "stamp changes when a member is removed");

	/* Replaced by rename with identical size, mode and mtime. */
	stamp(s, "beta", &c);
	write_rel("beta/.id.new", "secret-key-3\n", 13, 0600, T0 + 11);
	{
		char from[PATH_MAX], to[PATH_MAX];

		path_of(from, sizeof(from), "beta/.id.new");
		path_of(to, sizeof(to), "beta/id");
		rename(from, to);
	}
	stamp(s, "beta", &d);
	tap_ok(c != d, "stamp changes when a member is replaced by rename (same size and mtime)");

	/* Read data follows the change. */
	{
		struct keyset ks;

		memset(&ks, 0, sizeof(ks));
		ret = s->ops->read(s->priv, "beta", &ks);
		tap_ok(ret == 0 && ks.n == 3 && member_is(&ks.m[1], "id", 0600, "secret-key-3\n"),
		       "read returns the replaced content");
		keyset_clear(&ks);
	}

	/* A hidden file in a keyset is ignored by both. */
	stamp(s, "beta", &c);
	write_rel("beta/.swp", "x", 1, 0600, 0);
	stamp(s, "beta", &d);
	tap_ok(c == d, "dot files in a keyset do not change the stamp");
	unlink_rel("beta/.swp");
}

/* A keyset holding one bad entry: read and stamp both fail with -EINVAL
 * and read leaves the keyset empty. */
/* read and stamp fail with err, and why() says so in words with want. */
static void expect_refused(struct store *s, const char *name, int err, const char *want,
			   const char *what)
{
	char why[256];
	struct keyset ks;
	uint64_t st;
	int ret;

	memset(&ks, 0, sizeof(ks));
	ret = s->ops->read(s->priv, name, &ks);
	TAP_EQ_INT(ret, err, "read of a keyset with %s: %d (got %d)", what, err, ret);
	TAP_EQ_INT(ks.n, 0, "failed read leaves no members (%s)", what);
	keyset_clear(&ks);
	ret = stamp(s, name, &st);
	TAP_EQ_INT(ret, err, "stamp of a keyset with %s: %d (got %d)", what, err, ret);
	ret = s->ops->why(s->priv, name, why, sizeof(why));
	tap_ok(ret == err && strstr(why, want), "why (%s): \"%s\"", what, why);
}

static void expect_bad_keyset(struct store *s, const char *name, const char *what)
{
	expect_refused(s, name, -EINVAL, "member", what);
}

static void test_refusals(struct store *s)
{
	char p[PATH_MAX];
	struct keyset ks;
	uint64_t st;
	int fd, ret;

	mkdir_rel("linkout");
	path_of(p, sizeof(p), "linkout/lnk");
	if (symlink("../alpha/k", p))
		tap_ok(false, "symlink: %m");
	expect_refused(s, "linkout", -EINVAL, "leaving the keyset", "a symlink out of the keyset");

	mkdir_rel("linkabs");
	mkdir_rel("linkabs/d");
	path_of(p, sizeof(p), "linkabs/d/lnk");
	if (symlink("/etc/passwd", p))
		tap_ok(false, "symlink: %m");
	expect_refused(s, "linkabs", -EINVAL, "leaving the keyset", "an absolute symlink");

	mkdir_rel("deep");
	{
		char rel[256] = "deep";
		int i;

		for (i = 0; i <= KEYSET_DEPTH_MAX + 1; i++) {
			strcat(rel, "/d");
			mkdir_rel(rel);
		}
	}
	expect_refused(s, "deep", -EINVAL, "deeper than", "directories too deep");

	mkdir_rel("nestedbad");
	mkdir_rel("nestedbad/sub");
	write_rel("nestedbad/sub/bad name", "x", 1, 0600, 0);
	expect_refused(s, "nestedbad", -EINVAL, "sub/bad name", "a bad name in a subdirectory");

	mkdir_rel("withfifo");
	path_of(p, sizeof(p), "withfifo/fifo");
	if (mkfifo(p, 0600))
		tap_ok(false, "mkfifo: %m");
	expect_bad_keyset(s, "withfifo", "a fifo");

	mkdir_rel("badmember");
	write_rel("badmember/bad name", "x", 1, 0600, 0);
	expect_bad_keyset(s, "badmember", "an invalid member name");

	mkdir_rel("reserved");
	write_rel("reserved/" KEYSET_INI, "x", 1, 0600, 0);
	expect_bad_keyset(s, "reserved", "a member named " KEYSET_INI);

	/* Size limit: exactly STORE_MEMBER_MAX is fine, one more is not. */
	mkdir_rel("big");
	path_of(p, sizeof(p), "big/blob");
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, STORE_MEMBER_MAX))
		tap_ok(false, "ftruncate: %m");
	memset(&ks, 0, sizeof(ks));
	ret = s->ops->read(s->priv, "big", &ks);
	tap_ok(ret == 0 && ks.n == 1 && ks.m[0].len == STORE_MEMBER_MAX,
	       "a member of exactly STORE_MEMBER_MAX bytes is read (ret %d)", ret);
	keyset_clear(&ks);
	if (fd >= 0 && ftruncate(fd, STORE_MEMBER_MAX + 1))
		tap_ok(false, "ftruncate: %m");
	if (fd >= 0)
		close(fd);
	expect_refused(s, "big", -EFBIG, "larger than 20971520 bytes", "a member over STORE_MEMBER_MAX");

	/* Names that are not keysets. */
	ret = s->ops->read(s->priv, "nosuch", &ks);
	TAP_EQ_INT(ret, -ENOENT, "read of an unknown keyset: -ENOENT");
	ret = stamp(s, "nosuch", &st);
	TAP_EQ_INT(ret, -ENOENT, "stamp of an unknown keyset: -ENOENT");
	TAP_EQ_INT(s->ops->read(s->priv, "../x", &ks), -ENOENT, "read \"../x\": -ENOENT");
	TAP_EQ_INT(stamp(s, "../x", &st), -ENOENT, "stamp \"../x\": -ENOENT");
	TAP_EQ_INT(s->ops->read(s->priv, "beta/id", &ks), -ENOENT, "read \"beta/id\": -ENOENT");
	TAP_EQ_INT(s->ops->read(s->priv, "", &ks), -ENOENT, "read \"\": -ENOENT");
	TAP_EQ_INT(s->ops->read(s->priv, ".hidden", &ks), -ENOENT, "read \".hidden\": -ENOENT");
	TAP_EQ_INT(s->ops->read(s->priv, "bad name", &ks), -ENOENT, "read \"bad name\": -ENOENT");
	/* A regular file or a symlink in place of a keyset is not one. */
	tap_ok(s->ops->read(s->priv, "notadir", &ks) < 0, "read of a regular file fails");
	tap_ok(s->ops->read(s->priv, "link", &ks) < 0, "read through a symlinked keyset fails");
	tap_ok(stamp(s, "link", &st) < 0, "stamp through a symlinked keyset fails");
	keyset_clear(&ks);
}

/* Entries of <root>/.keyfs/meta other than want (NULL: none allowed). */
static int meta_strays(const char *want)
{
	char p[PATH_MAX];
	struct dirent *de;
	int strays = 0;
	DIR *d;

	path_of(p, sizeof(p), ".keyfs/meta");
	d = opendir(p);
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!want || strcmp(de->d_name, want)) {
			tap_ok(false, "unexpected entry .keyfs/meta/%s", de->d_name);
			strays++;
		}
	}
	closedir(d);
	return strays;
}

static void test_meta(void)
{
	char buf[META_VALUE_MAX], p[PATH_MAX];
	struct stat st;
	int ret;

	ret = meta_get(&state, "hint", buf, sizeof(buf));
	TAP_EQ_INT(ret, -ENOENT, "meta_get before any set: -ENOENT");
	TAP_EQ_INT(meta_set(&state, "hint", "the usual one"), 0, "meta_set hint");
	ret = meta_get(&state, "hint", buf, sizeof(buf));
	tap_ok(ret == 0 && !strcmp(buf, "the usual one"), "meta_get returns what was set");
	TAP_EQ_INT(meta_strays("hint"), 0, "no temp files left in .keyfs/meta");
	path_of(p, sizeof(p), ".keyfs/meta/hint");
	tap_ok(!stat(p, &st) && (st.st_mode & 07777) == 0600, "meta file is 0600");

	TAP_EQ_INT(meta_set(&state, "hint", "xy"), 0, "meta_set a shorter value");
	ret = meta_get(&state, "hint", buf, sizeof(buf));
	tap_ok(ret == 0 && !strcmp(buf, "xy"), "overwrite leaves no tail of the old value (%s)", buf);
	TAP_EQ_INT(meta_strays("hint"), 0, "no temp files after an overwrite");

	TAP_EQ_INT(meta_set(&state, "hint", ""), 0, "meta_set \"\" removes");
	TAP_EQ_INT(meta_get(&state, "hint", buf, sizeof(buf)), -ENOENT, "meta_get after removal: -ENOENT");
	TAP_EQ_INT(meta_strays(NULL), 0, "meta dir empty after removal");
	TAP_EQ_INT(meta_set(&state, "hint", ""), 0, "removing an unset key is fine");

	TAP_EQ_INT(meta_set(&state, "a/b", "v"), -EINVAL, "meta_set key with '/': -EINVAL");
	TAP_EQ_INT(meta_get(&state, "a/b", buf, sizeof(buf)), -EINVAL, "meta_get key with '/': -EINVAL");
	TAP_EQ_INT(meta_set(&state, "../../x", "v"), -EINVAL, "meta_set \"../../x\": -EINVAL");
	TAP_EQ_INT(meta_set(&state, "..", "v"), -EINVAL, "meta_set \"..\": -EINVAL");
	TAP_EQ_INT(meta_set(&state, ".hint.tmp", "v"), -EINVAL, "meta_set of a dot name: -EINVAL");
	TAP_EQ_INT(meta_set(&state, "", "v"), -EINVAL, "meta_set of an empty key: -EINVAL");
	TAP_EQ_INT(meta_strays(NULL), 0, "refused keys wrote nothing");
	path_of(p, sizeof(p), "x");
	tap_ok(access(p, F_OK) != 0, "\"../../x\" wrote nothing outside");

	/* Two keys side by side. */
	meta_set(&state, "hint", "h");
	meta_set(&state, "state", "s");
	ret = meta_get(&state, "state", buf, sizeof(buf));
	tap_ok(ret == 0 && !strcmp(buf, "s"), "a second key is kept apart");
	ret = meta_get(&state, "hint", buf, sizeof(buf));
	tap_ok(ret == 0 && !strcmp(buf, "h"), "the first key is unchanged");
	meta_set(&state, "hint", "");
	meta_set(&state, "state", "");
}

static void test_state(void)
{
	char want[PATH_MAX];
	struct stat st;

	path_of(want, sizeof(want), ".keyfs");
	tap_ok(!strcmp(state.path, want), "the state directory is <dir>/.keyfs (%s)", state.path);
	tap_ok(!stat(want, &st) && S_ISDIR(st.st_mode), "the state directory exists");
	tap_ok((st.st_mode & 07777) == 0700, "the state directory is 0700");
	path_of(want, sizeof(want), ".keyfs/versions");
	tap_ok(!stat(want, &st) && S_ISDIR(st.st_mode), "with its subdirectories");
}

static void test_open(void)
{
	char p[PATH_MAX];
	struct store s = { 0 };

	path_of(p, sizeof(p), "nosuch");
	TAP_EQ_INT(store_dir_open(p, &state, &s), -ENOENT, "open of a missing dir: -ENOENT");
	path_of(p, sizeof(p), "notadir");
	TAP_EQ_INT(store_dir_open(p, &state, &s), -ENOTDIR, "open of a regular file: -ENOTDIR");
	TAP_EQ_INT(store_open("nosuch", root, &state, &s), -ENOENT, "an unknown backend: -ENOENT");
	{
		const char *why = NULL;

		TAP_EQ_INT(store_backend_check("dir", &why), 0, "dir is a backend");
		TAP_EQ_INT(store_backend_check("nosuch", &why), -ENOENT, "nosuch is not");
		tap_ok(why && !strcmp(why, "not a known backend (known: \"dir\")"),
		       "... naming the known ones (%s)", why ? why : "-");
	}
	tap_ok(s.ops == NULL, "failed open leaves the store unset");
	store_close(&s); /* a no-op on an unset store */
}

/* Review findings 9, 15, 22: hard links, and bounds on a keyset. */
static void test_bounds(struct store *s)
{
	char p[PATH_MAX], q[PATH_MAX], rel[64];
	int i, fd;

	mkdir_rel("linked");
	write_rel("outside", "shadow", 6, 0600, 0);
	path_of(p, sizeof(p), "outside");
	path_of(q, sizeof(q), "linked/passwd");
	if (link(p, q))
		tap_ok(false, "link: %m");
	expect_refused(s, "linked", -EINVAL, "hard-linked", "a hard-linked member");

	mkdir_rel("many");
	for (i = 0; i <= KEYSET_MEMBERS_MAX; i++) {
		snprintf(rel, sizeof(rel), "many/k%03d", i);
		write_rel(rel, "k", 1, 0600, 0);
	}
	expect_refused(s, "many", -E2BIG, "more than 1024 members", "1025 members");

	mkdir_rel("dots");
	write_rel("dots/key", "k", 1, 0600, 0);
	for (i = 0; i < STORE_ENTRIES_MAX; i++) {
		snprintf(rel, sizeof(rel), "dots/.junk%05d", i);
		write_rel(rel, "", 0, 0600, 0);
	}
	expect_refused(s, "dots", -E2BIG, "directory entries", "too many dot files");

	mkdir_rel("huge");
	for (i = 0; i <= STORE_KEYSET_MAX / STORE_MEMBER_MAX; i++) {
		snprintf(rel, sizeof(rel), "huge/part%02d", i);
		path_of(p, sizeof(p), rel);
		fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0 || ftruncate(fd, STORE_MEMBER_MAX))
			tap_ok(false, "ftruncate: %m");
		if (fd >= 0)
			close(fd);
	}
	expect_refused(s, "huge", -EFBIG, "in all", "members over the keyset total");
}

/* Review finding 1: a FIFO (or anything but a plain file) is never opened
 * in a way that blocks, and a file swapped since the walk is noticed. */
static void test_open_regular(void)
{
	char p[PATH_MAX];
	struct stat seen;
	int dfd, fd;

	dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	path_of(p, sizeof(p), "pipe");
	if (mkfifo(p, 0600))
		tap_ok(false, "mkfifo: %m");
	alarm(10); /* a blocking open would hang here: fail instead */
	fd = dirwalk_open_regular(dfd, "pipe", NULL, NULL);
	alarm(0);
	TAP_EQ_INT(fd, -EINVAL, "a FIFO is refused without blocking");
	write_rel("plain", "x", 1, 0600, 0);
	write_rel("other", "y", 1, 0600, 0);
	fstatat(dfd, "other", &seen, AT_SYMLINK_NOFOLLOW);
	fd = dirwalk_open_regular(dfd, "plain", &seen, NULL);
	TAP_EQ_INT(fd, -EAGAIN, "a file other than the one the walk saw: -EAGAIN");
	fstatat(dfd, "plain", &seen, AT_SYMLINK_NOFOLLOW);
	fd = dirwalk_open_regular(dfd, "plain", &seen, NULL);
	tap_ok(fd >= 0, "the file the walk saw opens");
	if (fd >= 0)
		close(fd);
	close(dfd);
}

/* Review finding 10: a symlinked state directory is refused, and nothing
 * is deleted through it. */
static void test_state_symlink(void)
{
	char p[PATH_MAX], q[PATH_MAX];
	struct state bad;
	struct stat st;

	mkdir_rel("evil");
	mkdir_rel("evil/store");
	mkdir_rel("victim");
	mkdir_rel("victim/tmp");
	mkdir_rel("victim/tmp/precious");
	write_rel("victim/tmp/precious/file", "keep", 4, 0600, 0);
	path_of(p, sizeof(p), "evil/store/.keyfs");
	path_of(q, sizeof(q), "victim");
	if (symlink(q, p))
		tap_ok(false, "symlink: %m");
	path_of(p, sizeof(p), "evil/store/.keyfs");
	TAP_EQ_INT(state_open(&bad, p), -ENOTDIR, "a symlinked .keyfs is refused");
	path_of(q, sizeof(q), "victim/tmp/precious/file");
	tap_ok(stat(q, &st) == 0, "nothing was deleted through the link");
}

/* Review finding 6: activate with a file where the keyset directory
 * should be fails cleanly. */
static void test_activate_not_dir(struct store *s)
{
	struct keyset ks = { 0 };
	struct store_put put = { 0 };
	unsigned kept = 0;
	int ret;

	snprintf(ks.name, sizeof(ks.name), "flat");
	keyset_add(&ks, "k", 0600, 1, (const uint8_t *)"v1", 2);
	ret = s->ops->put(s->priv, &ks, &put);
	TAP_EQ_INT(ret, 0, "put flat");
	keyset_clear(&ks);
	snprintf(ks.name, sizeof(ks.name), "flat");
	keyset_add(&ks, "k", 0600, 1, (const uint8_t *)"v2", 2);
	ret = s->ops->put(s->priv, &ks, &put);
	tap_ok(ret == 0 && put.outcome == STORE_VERSIONED, "second content is version %u", put.version);
	keyset_clear(&ks);
	{
		char p[PATH_MAX], q[PATH_MAX];

		path_of(p, sizeof(p), "flat");
		path_of(q, sizeof(q), "flat.moved");
		if (rename(p, q))
			tap_ok(false, "rename: %m");
	}
	write_rel("flat", "not a dir", 9, 0600, 0);
	ret = s->ops->activate(s->priv, "flat", put.version, &kept);
	TAP_EQ_INT(ret, -ENOTDIR, "activate over a file: -ENOTDIR, no crash");
}

/* A stored version that cannot be read is no match, and no reason to
 * refuse later restores of its keyset. */
static void test_unreadable_version(struct store *s)
{
	struct keyset ks = { 0 };
	struct store_put put = { 0 };
	int ret;

	snprintf(ks.name, sizeof(ks.name), "vers");
	keyset_add(&ks, "k", 0600, 1, (const uint8_t *)"v1", 2);
	s->ops->put(s->priv, &ks, &put);
	keyset_clear(&ks);
	snprintf(ks.name, sizeof(ks.name), "vers");
	keyset_add(&ks, "k", 0600, 1, (const uint8_t *)"v2", 2);
	ret = s->ops->put(s->priv, &ks, &put);
	tap_ok(ret == 0 && put.outcome == STORE_VERSIONED && put.version == 1, "version 1 stored");
	keyset_clear(&ks);
	mkdir_rel(".keyfs/versions/vers/1/sub"); /* no longer a keyset */
	snprintf(ks.name, sizeof(ks.name), "vers");
	keyset_add(&ks, "k", 0600, 1, (const uint8_t *)"v3", 2);
	ret = s->ops->put(s->priv, &ks, &put);
	tap_ok(ret == 0 && put.outcome == STORE_VERSIONED && put.version == 2,
	       "an unreadable version 1 does not block version 2 (ret %d, outcome %d)", ret,
	       (int)put.outcome);
	keyset_clear(&ks);
}

/* Directory names outside the keyset alphabet are keysets under their
 * escaped names; one too long to escape is listed and says why. */
static void test_odd_names(struct store *s)
{
	char longname[40 * 2 + 1] = "", why[256], **names = NULL;
	struct keyset ks = { 0 };
	struct store_put put = { 0 };
	uint64_t st;
	size_t n = 0, i, found = 0;
	int ret;

	for (i = 0; i < 40; i++)
		strcat(longname, "\xc3\xa9");
	mkdir_rel("caf\xc3\xa9");
	write_rel("caf\xc3\xa9/k", "k", 1, 0600, T0);
	mkdir_rel(longname);
	ret = s->ops->read(s->priv, "caf%C3%A9", &ks);
	tap_ok(ret == 0 && ks.n == 1 && !strcmp(ks.name, "caf%C3%A9"), "caf%%C3%%A9 reads caf\\xc3\\xa9/");
	TAP_EQ_INT(s->ops->read(s->priv, "caf\xc3\xa9", &ks), -ENOENT, "a raw name is no keyset name");
	snprintf(ks.name, sizeof(ks.name), "odd%%20name");
	TAP_EQ_INT(store_put(s, &ks, &put), 0, "put odd%%20name");
	TAP_EQ_INT(access(strcat(strcpy(why, root), "/odd name/k"), F_OK), 0, "restored into \"odd name\"/");
	keyset_clear(&ks);
	ret = s->ops->list(s->priv, &names, &n);
	for (i = 0; ret == 0 && i < n; i++) {
		if (!strstr(names[i], "%2F"))
			continue;
		found++;
		TAP_EQ_INT(stamp(s, names[i], &st), -ENAMETOOLONG, "a too long name's stamp fails");
		TAP_EQ_INT(s->ops->why(s->priv, names[i], why, sizeof(why)), -ENAMETOOLONG, "why fails the same");
		tap_ok(strstr(why, "longer than 64") != NULL, "why says the name is too long: %s", why);
	}
	TAP_EQ_INT(found, 1, "the too long name is listed, not skipped");
	store_list_free(names);
	tap_ok(keyset_name_valid("%2Ex") && !keyset_name_valid("a%2Ex") && !keyset_name_valid("%41") &&
	       !keyset_name_valid("%c3") && !keyset_name_valid("%00") && !keyset_name_valid("%2"),
	       "only canonical escapes are valid");
}

/* Stamps of w's keysets a..e, into st[]. */
static void stamps_of(struct store *s, uint64_t st[5])
{
	static const char *names[] = { "a", "b", "c", "d", "e" };
	int i;

	for (i = 0; i < 5; i++)
		if (stamp(s, names[i], &st[i]))
			tap_ok(false, "stamp %s", names[i]);
}

static bool open_w(struct store *s, struct state *ws)
{
	char p[PATH_MAX], sp[PATH_MAX];

	path_of(p, sizeof(p), "w");
	path_of(sp, sizeof(sp), "w/.keyfs");
	return !state_open(ws, sp) && !store_open("dir", p, ws, s);
}

static void close_w(struct store *s, struct state *ws)
{
	store_close(s);
	state_close(ws);
}

/* What the stamps are with the records of the last stop (h), and with
 * walks once settled (w): the same, if the records were trusted only
 * where they hold. */
static void stamps_both(uint64_t h[5], uint64_t w[5])
{
	struct state ws = { .fd = -1 };
	struct store s = { 0 };

	if (!open_w(&s, &ws)) {
		tap_ok(false, "open w");
		return;
	}
	stamps_of(&s, h);
	s.ops->settled(s.priv);
	stamps_of(&s, w);
	close_w(&s, &ws);
}

/* STATE/walks: a clean stop records what each keyset directory held; the
 * next start stamps from it while the directory is unchanged, and walks
 * where anything may have changed while keyfs was stopped. */
static void test_walks(void)
{
	uint64_t s0[5], h[5], w[5];
	struct state ws = { .fd = -1 };
	struct store s = { 0 };
	char p[PATH_MAX], line[256];
	FILE *f;
	int i, lines = 0;
	bool a = false, b = false, e = false, other = false;

	mkdir_rel("w");
	mkdir_rel("w/a");
	write_rel("w/a/k1", "one", 3, 0600, T0);
	write_rel("w/a/k2", "two", 3, 0600, T0);
	mkdir_rel("w/b");
	write_rel("w/b/k", "bee", 3, 0600, T0);
	mkdir_rel("w/c");
	mkdir_rel("w/c/sub");
	write_rel("w/c/sub/k", "sub", 3, 0600, T0);
	mkdir_rel("w/d");
	write_rel("w/d/k", "dee", 3, 0600, T0);
	path_of(p, sizeof(p), "w/d/l");
	if (symlink("k", p))
		tap_ok(false, "symlink: %m");
	mkdir_rel("w/e");
	/* directories changed within 2 s of a stop get no record */
	sleep(3);

	/* no first pass, no record: keyfsctl and failed starts write none */
	if (!tap_ok(open_w(&s, &ws), "open w"))
		return;
	close_w(&s, &ws);
	path_of(p, sizeof(p), "w/.keyfs/walks");
	tap_ok(access(p, F_OK) && errno == ENOENT, "no records without a first pass");

	if (!open_w(&s, &ws))
		return;
	stamps_of(&s, s0);
	s.ops->settled(s.priv);
	close_w(&s, &ws);
	f = fopen(p, "r");
	while (f && fgets(line, sizeof(line), f)) {
		lines++;
		a |= !strncmp(line, "a ", 2) && (strstr(line, " 2 k1 k2\n") || strstr(line, " 2 k2 k1\n"));
		b |= !strncmp(line, "b ", 2) && strstr(line, " 1 k\n");
		e |= !strncmp(line, "e ", 2) && strstr(line, " 0\n");
		other |= !strncmp(line, "c ", 2) || !strncmp(line, "d ", 2);
	}
	if (f)
		fclose(f);
	tap_ok(a && b && e && !other && lines == 5,
	       "a clean stop records keysets of files only (a, b, e; not c, d)");

	stamps_both(h, w);
	for (i = 0; i < 5; i++)
		tap_ok(h[i] == s0[i] && w[i] == s0[i], "keyset %c: the same stamp from the record", 'a' + i);

	/* while stopped: a's content, b gets a file and its times set back,
	 * e is made anew */
	write_rel("w/a/k1", "uno", 3, 0600, T0);
	write_rel("w/b/new", "n", 1, 0600, T0);
	set_mtime_rel("w/b", T0);
	path_of(p, sizeof(p), "w/e");
	if (rmdir(p) || mkdir(p, 0700))
		tap_ok(false, "e anew: %m");
	stamps_both(h, w);
	tap_ok(h[0] == w[0] && h[0] != s0[0], "a file rewritten while stopped changes the stamp");
	tap_ok(h[1] == w[1] && h[1] != s0[1], "a file added while stopped: walked, whatever the mtime");
	tap_ok(h[2] == w[2] && h[3] == w[3] && h[4] == w[4], "the others as walked");

	/* The record is what is trusted: one naming k1 alone gives a's
	 * stamp without k2. */
	sleep(3);
	if (!open_w(&s, &ws))
		return;
	s.ops->settled(s.priv);
	stamps_of(&s, s0);
	close_w(&s, &ws);
	path_of(p, sizeof(p), "w/.keyfs/walks");
	f = fopen(p, "r+");
	{
		char buf[4096], *k;
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

		buf[n] = '\0';
		k = strstr(buf, " 2 k1 k2\n");
		if (!k)
			k = strstr(buf, " 2 k2 k1\n");
		if (k && f) {
			memcpy(k, " 1 k1   \n", 9);
			rewind(f);
			fwrite(buf, 1, n, f);
		}
		tap_ok(k != NULL, "a's record found");
		if (f)
			fclose(f);
	}
	stamps_both(h, w);
	tap_ok(h[0] != w[0] && w[0] == s0[0], "the first stamps come from the record");

	/* a torn file is not used */
	f = fopen(p, "r+");
	if (f) {
		if (ftruncate(fileno(f), 40))
			tap_ok(false, "truncate: %m");
		fclose(f);
	}
	stamps_both(h, w);
	tap_ok(h[0] == w[0], "a torn record file is not used");
}

int main(void)
{
	struct store s = { 0 };
	char sp[PATH_MAX];
	int ret;

	if (sodium_init() < 0) {
		tap_ok(false, "sodium_init");
		return tap_done();
	}
	snprintf(root, sizeof(root), "/tmp/keyfs-test-store.XXXXXX");
	if (!tap_ok(mkdtemp(root) != NULL, "mkdtemp"))
		return tap_done();
	populate();
	path_of(sp, sizeof(sp), ".keyfs");
	ret = state_open(&state, sp);
	TAP_EQ_INT(ret, 0, "state_open");
	if (!ret)
		ret = store_open("dir", root, &state, &s);
	TAP_EQ_INT(ret, 0, "store_open dir");
	if (!ret) {
		test_list(&s);
		test_state();
		test_list(&s); /* .keyfs now exists and is still not a keyset */
		test_read(&s);
		test_stamp(&s);
		test_refusals(&s);
		test_bounds(&s);
		test_activate_not_dir(&s);
		test_unreadable_version(&s);
		test_meta();
		test_odd_names(&s);
		store_close(&s);
		state_close(&state);
		tap_ok(s.ops == NULL, "store_close clears the store");
	}
	test_open();
	test_open_regular();
	test_state_symlink();
	test_walks();
	tap_ok(tap_rmtree(root) == 0, "temp dir removed");
	return tap_done();
}
