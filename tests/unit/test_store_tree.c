/* Unit tests for key trees in the directory store (keytree_read.c,
 * keytree_write.c through store.h): a tree made with plain system calls
 * reads with its types, owners, link targets and xattrs; the stamp sees
 * chown and xattr changes; a socket fails the keyset; a restore writes
 * the tree back as it was, and refuses owners it cannot give. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/keytree.h"
#include "keyfs/state.h"
#include "keyfs/store.h"

#include "tap.h"

#define T0 1700000000

static char root[64];

static void at(char *out, size_t size, const char *rel)
{
	snprintf(out, size, "%s/%s", root, rel);
}

static void mkdir_rel(const char *rel, mode_t mode)
{
	char p[PATH_MAX];

	at(p, sizeof(p), rel);
	if (mkdir(p, mode) || chmod(p, mode))
		tap_ok(false, "mkdir %s: %m", rel);
}

static void write_rel(const char *rel, const char *data, mode_t mode)
{
	struct timespec ts[2] = { { T0, 0 }, { T0, 0 } };
	char p[PATH_MAX];
	int fd;

	at(p, sizeof(p), rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, strlen(data)) != (ssize_t)strlen(data) || fchmod(fd, mode) ||
	    futimens(fd, ts))
		tap_ok(false, "write %s: %m", rel);
	if (fd >= 0)
		close(fd);
}

static void symlink_rel(const char *target, const char *rel)
{
	char p[PATH_MAX];

	at(p, sizeof(p), rel);
	if (symlink(target, p))
		tap_ok(false, "symlink %s: %m", rel);
}

/* store/tls: a certbot-shaped tree, a labelled key, another owner's. */
static void populate(void)
{
	char p[PATH_MAX];

	mkdir_rel("store", 0700);
	mkdir_rel("store/tls", 0700);
	mkdir_rel("store/tls/archive", 0700);
	mkdir_rel("store/tls/archive/example.org", 0755);
	write_rel("store/tls/archive/example.org/cert1.pem", "cert-1\n", 0644);
	write_rel("store/tls/archive/example.org/privkey1.pem", "key-1\n", 0600);
	mkdir_rel("store/tls/live", 0755);
	mkdir_rel("store/tls/live/example.org", 0755);
	symlink_rel("../../archive/example.org/cert1.pem", "store/tls/live/example.org/cert.pem");
	symlink_rel("../../archive/example.org/privkey1.pem",
		    "store/tls/live/example.org/privkey.pem");
	write_rel("store/tls/labelled.key", "labelled\n", 0400);
	at(p, sizeof(p), "store/tls/labelled.key");
	if (setxattr(p, "user.purpose", "test", 4, 0) ||
	    setxattr(p, "trusted.not-kept", "x", 1, 0) != (geteuid() == 0 ? 0 : -1))
		tap_ok(false, "setxattr: %m");
	write_rel("store/tls/theirs.key", "theirs\n", 0600);
	at(p, sizeof(p), "store/tls/theirs.key");
	if (geteuid() == 0 && chown(p, 1234, 5678))
		tap_ok(false, "chown: %m");
}

static const struct keyset_member *member(const struct keyset *ks, const char *name)
{
	size_t i;

	for (i = 0; i < ks->n; i++) {
		if (!strcmp(ks->m[i].name, name))
			return &ks->m[i];
	}
	return NULL;
}

static void test_read(struct store *s)
{
	const struct keyset_member *m;
	struct keyset ks = { 0 };

	TAP_EQ_INT(s->ops->read(s->priv, "tls", &ks), 0, "read a tree");
	TAP_EQ_INT(ks.n, 10, "ten members: 4 directories, 4 files, 2 links");
	m = member(&ks, "live/example.org/cert.pem");
	tap_ok(m && m->type == KEYSET_LINK && !strcmp(m->link, "../../archive/example.org/cert1.pem"),
	       "a live/ link is a link, its target as is");
	m = member(&ks, "archive");
	tap_ok(m && m->type == KEYSET_DIR && m->mode == 0700, "a directory with its mode");
	m = member(&ks, "labelled.key");
	tap_ok(m && m->mode == 0400 && m->nxattr == 1 && !strcmp(m->xattr[0].name, "user.purpose") &&
	       m->xattr[0].len == 4 && !memcmp(m->xattr[0].value, "test", 4),
	       "a user.* xattr kept, trusted.* not");
	m = member(&ks, "theirs.key");
	if (geteuid() == 0)
		tap_ok(m && m->owned && m->uid == 1234 && m->gid == 5678, "numeric owner kept");
	m = member(&ks, "archive/example.org/cert1.pem");
	tap_ok(m && m->owned && m->uid == geteuid() && m->len == 7 && m->mtime == T0,
	       "a file: owner, bytes, mtime");
	tap_ok(geteuid() != 0 || !strcmp(m->user, "root"), "owner name looked up (%s)",
	       m ? m->user : "?");
	keyset_clear(&ks);
}

static void test_stamp(struct store *s)
{
	uint64_t a, b;
	char p[PATH_MAX];

	s->ops->stamp(s->priv, "tls", &a);
	at(p, sizeof(p), "store/tls/labelled.key");
	setxattr(p, "user.purpose", "TEST", 4, 0);
	s->ops->stamp(s->priv, "tls", &b);
	tap_ok(a != b, "an xattr change moves the stamp");
	at(p, sizeof(p), "store/tls/archive/example.org/cert1.pem");
	if (lchown(p, geteuid(), 0) == 0) {
		s->ops->stamp(s->priv, "tls", &a);
		tap_ok(a != b, "a chown moves the stamp");
	}
	at(p, sizeof(p), "store/tls/live/example.org/cert.pem");
	unlink(p);
	symlink("../../archive/example.org/privkey1.pem", p);
	s->ops->stamp(s->priv, "tls", &b);
	tap_ok(a != b, "a link pointed elsewhere moves the stamp");
}

/* One walk reads and stamps (a seal's): the stamp is stamp()'s and the
 * keyset read()'s, on a tree of directories, files, links and xattrs. */
static void test_read_stamped(struct store *s)
{
	struct keyset a = { 0 }, b = { 0 };
	uint64_t st = 0, rs = 1;
	char p[PATH_MAX];

	TAP_EQ_INT(store_read_stamped(s, "tls", &a, &rs), 0, "read and stamped in one walk");
	s->ops->stamp(s->priv, "tls", &st);
	s->ops->read(s->priv, "tls", &b);
	tap_ok(rs == st, "... the stamp is stamp()'s");
	tap_ok(a.n == 10 && keyset_equal(&a, &b), "... the keyset is read()'s");
	keyset_clear(&a);
	keyset_clear(&b);
	at(p, sizeof(p), "store/tls/archive/example.org/cert1.pem");
	chmod(p, 0640);
	TAP_EQ_INT(store_read_stamped(s, "tls", &a, &rs), 0, "a member changed, read again");
	tap_ok(rs != st && !s->ops->stamp(s->priv, "tls", &st) && rs == st,
	       "... a new stamp, stamp()'s");
	keyset_clear(&a);
	chmod(p, 0644);
}

static void test_socket(struct store *s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct keyset ks = { 0 };
	char why[256];
	uint64_t st;
	int fd;

	mkdir_rel("store/agent", 0700);
	write_rel("store/agent/key", "k", 0600);
	at(sa.sun_path, sizeof(sa.sun_path), "store/agent/agent.sock");
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)))
		tap_ok(false, "bind: %m");
	TAP_EQ_INT(s->ops->stamp(s->priv, "agent", &st), -EINVAL, "a socket fails the stamp");
	TAP_EQ_INT(s->ops->read(s->priv, "agent", &ks), -EINVAL, "... and the read");
	tap_ok(s->ops->why(s->priv, "agent", why, sizeof(why)) == -EINVAL &&
	       strstr(why, "agent.sock") && strstr(why, "a socket"), "why: %s", why);
	close(fd);
}

/* What a restore wrote is the keyset it was given, read back. */
static void test_restore(struct store *s)
{
	struct keyset ks = { 0 }, back = { 0 };
	struct store_put res = { 0 };
	char p[PATH_MAX];
	struct stat st;

	s->ops->read(s->priv, "tls", &ks);
	snprintf(ks.name, sizeof(ks.name), "copy");
	TAP_EQ_INT(store_put(s, &ks, &res), 0, "restore the tree as another keyset");
	TAP_EQ_INT(s->ops->read(s->priv, "copy", &back), 0, "read it back");
	tap_ok(keyset_equal(&ks, &back), "the same tree");
	at(p, sizeof(p), "store/copy/live/example.org/cert.pem");
	tap_ok(!lstat(p, &st) && S_ISLNK(st.st_mode) &&
	       st.st_mtime == member(&ks, "live/example.org/cert.pem")->mtime,
	       "a link, with its time");
	at(p, sizeof(p), "store/copy/archive");
	tap_ok(!stat(p, &st) && (st.st_mode & 07777) == 0700, "a directory with its mode");
	keyset_clear(&back);

	/* Not root: an owner other than ours is refused before writing. */
	if (geteuid() == 0) {
		int status = -1;
		pid_t pid;

		/* searchable, so that the restore gets as far as writing */
		at(p, sizeof(p), "store");
		chmod(p, 0711);
		pid = fork();
		if (pid == 0) {
			snprintf(ks.name, sizeof(ks.name), "other");
			_exit(setgroups(0, NULL) || setegid(65534) || seteuid(65534) ? 99 :
			      -store_put(s, &ks, &res));
		}
		waitpid(pid, &status, 0);
		chmod(p, 0700);
		TAP_EQ_INT(WIFEXITED(status) ? WEXITSTATUS(status) : -1, EPERM,
			   "a restore of root's files by another user: EPERM");
		at(p, sizeof(p), "store/other");
		tap_ok(access(p, F_OK) != 0, "... nothing written");
	}
	keyset_clear(&ks);
}

/* A tree whose links each stay inside but lead out together is
 * reported with the member named, not read; a link to a link inside
 * reads. */
static void test_link_chain(struct store *s)
{
	struct keyset ks = { 0 };
	char why[512];

	mkdir_rel("store/chain", 0700);
	mkdir_rel("store/chain/conf", 0700);
	symlink_rel("..", "store/chain/conf/l");
	symlink_rel("l/../../secret", "store/chain/conf/server.key");
	TAP_EQ_INT(s->ops->read(s->priv, "chain", &ks), -EINVAL, "a link chain out: not read");
	tap_ok(ks.n == 0, "... nothing kept");
	tap_ok(s->ops->why(s->priv, "chain", why, sizeof(why)) == -EINVAL &&
	       strstr(why, "\"conf/server.key\"") && strstr(why, "leaving the keyset"),
	       "why: %s", why);

	mkdir_rel("store/loop", 0700);
	symlink_rel("b", "store/loop/a");
	symlink_rel("a", "store/loop/b");
	tap_ok(s->ops->why(s->priv, "loop", why, sizeof(why)) == -EINVAL && strstr(why, "loop"),
	       "a link loop: %s", why);

	symlink_rel("cert.pem", "store/tls/live/example.org/fullchain.pem");
	TAP_EQ_INT(s->ops->read(s->priv, "tls", &ks), 0, "a link to a link inside reads");
	keyset_clear(&ks);
}

int main(void)
{
	struct store s = { 0 };
	struct state state;
	char p[PATH_MAX], dir[PATH_MAX];

	snprintf(root, sizeof(root), "/tmp/keyfs-test-tree.XXXXXX");
	if (sodium_init() < 0 || !mkdtemp(root)) {
		tap_ok(false, "setup");
		return tap_done();
	}
	populate();
	at(p, sizeof(p), "store/.keyfs");
	at(dir, sizeof(dir), "store");
	if (tap_ok(!state_open(&state, p), "state") &&
	    tap_ok(!store_open("dir", dir, &state, &s), "open")) {
		test_read(&s);
		test_stamp(&s);
		test_read_stamped(&s);
		test_socket(&s);
		test_restore(&s);
		test_link_chain(&s);
		store_close(&s);
		state_close(&state);
	}
	tap_ok(tap_rmtree(root) == 0, "temp dir removed");
	return tap_done();
}
