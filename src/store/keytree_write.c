/* Writing a keyset as a directory tree, and removing a tree
 * (keytree.h). Every member is created under a temporary name in its
 * directory, given its owner, mode, xattrs and time, fsynced and then
 * renamed: a reader of the directory never sees a half-made key. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/dirwalk.h"
#include "keyfs/keytree.h"
#include "keyfs/replace.h"

/* A temporary name the walkers skip (it starts with a dot). */
#define TMP_FMT ".%s.keyfs-new"

static bool in_groups(gid_t gid)
{
	gid_t groups[NGROUPS_MAX];
	int i, n;

	if (gid == getegid())
		return true;
	n = getgroups(NGROUPS_MAX, groups);
	for (i = 0; i < n; i++) {
		if (groups[i] == gid)
			return true;
	}
	return false;
}

int keytree_owner_check(const struct keyset *ks)
{
	uid_t me = geteuid();
	size_t i;

	if (me == 0)
		return 0;
	/* Only root gives files away; a file left with the daemon's owner
	 * would be a different key setup than the backup, so refuse. */
	for (i = 0; i < ks->n; i++) {
		const struct keyset_member *m = &ks->m[i];

		if (m->owned && (m->uid != me || !in_groups(m->gid)))
			return -EPERM;
	}
	return 0;
}

/* Is a directory one that only root, this process or allowed can
 * change? Its owner can always chmod it; a group or world write bit
 * lets others swap its entries, unless the sticky bit keeps them to
 * their own (what /tmp relies on). */
static int dir_safe(const struct stat *st, bool owned, uid_t allowed)
{
	bool shared = ((st->st_mode & S_IWGRP) && st->st_gid != 0) || (st->st_mode & S_IWOTH);

	if (st->st_uid != 0 && st->st_uid != geteuid() && !(owned && st->st_uid == allowed))
		return -EACCES;
	return shared && !(st->st_mode & S_ISVTX) ? -EACCES : 0;
}

int keytree_pins_init(struct keytree_pins *p, const struct keyset *ks)
{
	p->ks = ks;
	p->pin = calloc(ks->n + 1, sizeof(*p->pin));
	p->why[0] = '\0';
	return p->pin ? 0 : -ENOMEM;
}

void keytree_pins_free(struct keytree_pins *p)
{
	free(p->pin);
	p->pin = NULL;
}

/* The first time a directory of ks is opened its identity is kept
 * (once its owner and modes are found safe); every later open must
 * meet the same directory, so one swapped for another directory or a
 * link between two steps of an install is never written through. */
static int pin(struct keytree_pins *p, const char *path, int fd)
{
	const struct keyset_member *m;
	struct keytree_pin *k;
	struct stat st;
	int ret;

	if (!p)
		return 0;
	m = keyset_find(p->ks, path);
	if (!m || m->type != KEYSET_DIR)
		return 0; /* not one of ks' (an old member's): walked, not pinned */
	if (fstat(fd, &st))
		return -errno;
	k = &p->pin[m - p->ks->m];
	if (k->ino)
		return k->dev == st.st_dev && k->ino == st.st_ino ? 0 : -ESTALE;
	ret = dir_safe(&st, m->owned, m->uid);
	if (ret) {
		snprintf(p->why, sizeof(p->why), "directory \"%s\" (owner uid %u, mode %04o) can be "
			 "changed by a user other than root and its recorded owner", path,
			 (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		return ret;
	}
	k->dev = st.st_dev;
	k->ino = st.st_ino;
	k->uid = st.st_uid;
	return 0;
}

int keytree_pins_check_way(struct keytree_pins *p, const struct keyset_member *m)
{
	char prefix[KEYSET_PATH_MAX + 1];
	const struct keyset_member *d;
	const char *slash;
	uid_t uid;

	for (slash = strchr(m->name, '/'); slash; slash = strchr(slash + 1, '/')) {
		snprintf(prefix, sizeof(prefix), "%.*s", (int)(slash - m->name), m->name);
		d = keyset_find(p->ks, prefix);
		if (!d || !p->pin[d - p->ks->m].ino)
			continue;
		uid = p->pin[d - p->ks->m].uid;
		if (uid == 0 || uid == geteuid() || (m->owned && uid == m->uid))
			continue;
		snprintf(p->why, sizeof(p->why), "\"%s\" would be restored into directory \"%s\", "
			 "which uid %u can change: it is not root's nor the member's owner",
			 m->name, prefix, (unsigned)uid);
		return -EACCES;
	}
	return 0;
}

int keytree_check_above(int dfd, const struct keyset *ks, const char *where, char *why,
			size_t size)
{
	struct stat root, st;
	bool owned = ks->n > 0;
	uid_t uid = ks->n ? ks->m[0].uid : 0;
	unsigned depth;
	size_t i;
	int fd, up, ret = 0;

	/* A user's own tree (~/.ssh) may sit in that user's directories;
	 * anything else only in directories root alone can change. */
	for (i = 0; i < ks->n; i++)
		owned = owned && ks->m[i].owned && ks->m[i].uid == uid;
	if (stat("/", &root))
		return -errno;
	fd = dup(dfd);
	for (depth = 0; fd >= 0 && depth < 4 * KEYSET_DEPTH_MAX; depth++) {
		if (fstat(fd, &st)) {
			ret = -errno;
			break;
		}
		ret = dir_safe(&st, owned, uid);
		if (ret) {
			snprintf(why, size, "%s, or a directory above it (owner uid %u, mode %04o), "
				 "can be changed by a user other than root and the keys' owner",
				 where, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
			break;
		}
		if (st.st_dev == root.st_dev && st.st_ino == root.st_ino)
			break;
		up = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(fd);
		fd = up;
	}
	if (fd < 0)
		return ret ? ret : -errno;
	close(fd);
	return ret;
}

/* Walks to the directory path lives in, one component at a time, each
 * opened with O_NOFOLLOW and checked against its pin. */
int keytree_open_parent(int dfd, struct keytree_pins *pins, const char *path, const char **base)
{
	char comp[KEYSET_MEMBER_NAME_MAX + 1], prefix[KEYSET_PATH_MAX + 1];
	const char *p = path, *slash;
	int fd = dup(dfd), next, ret;

	if (fd < 0)
		return -errno;
	while ((slash = strchr(p, '/')) != NULL) {
		if ((size_t)(slash - p) > KEYSET_MEMBER_NAME_MAX ||
		    (size_t)(slash - path) > KEYSET_PATH_MAX) {
			close(fd);
			return -ENAMETOOLONG;
		}
		snprintf(comp, sizeof(comp), "%.*s", (int)(slash - p), p);
		next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		if (next < 0)
			return -errno;
		snprintf(prefix, sizeof(prefix), "%.*s", (int)(slash - path), path);
		ret = pin(pins, prefix, next);
		if (ret) {
			close(next);
			return ret;
		}
		fd = next;
		p = slash + 1;
	}
	*base = p;
	return fd;
}

/* The directory member m itself, opened through its parent, pinned. */
static int open_dir(int dfd, struct keytree_pins *pins, const struct keyset_member *m)
{
	const char *base;
	int pfd, fd, ret;

	pfd = keytree_open_parent(dfd, pins, m->name, &base);
	if (pfd < 0)
		return pfd;
	fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	ret = fd < 0 ? -errno : pin(pins, m->name, fd);
	close(pfd);
	if (ret && fd >= 0)
		close(fd);
	return ret ? ret : fd;
}

static int set_xattrs(int fd, const struct keyset_member *m)
{
	size_t i;

	for (i = 0; i < m->nxattr; i++) {
		const struct keyset_xattr *x = &m->xattr[i];

		/* a file capability makes a root-owned file a way to root:
		 * never restored, whatever the archive says */
		if (!strcmp(x->name, "security.capability"))
			continue;
		if (fsetxattr(fd, x->name, x->value, x->len, 0) == 0)
			continue;
		/* An SELinux label where SELinux is off, or one this process
		 * may not set: the kernel labels the file itself. */
		if (!strncmp(x->name, "security.", 9) &&
		    (errno == EPERM || errno == EACCES || errno == ENOTSUP))
			continue;
		return -errno;
	}
	return 0;
}

/* Owner first: chown clears setuid bits, and xattrs such as
 * security.capability, set after it. */
static int set_attrs(int fd, const struct keyset_member *m)
{
	if (m->owned && fchown(fd, m->uid, m->gid))
		return -errno;
	return set_xattrs(fd, m);
}

static int write_file(int pfd, const char *tmp, const struct keyset_member *m)
{
	struct timespec times[2] = { { m->mtime, 0 }, { m->mtime, 0 } };
	int fd, ret = 0;

	fd = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	ret = replace_write_all(fd, m->data, m->len);
	if (!ret)
		ret = set_attrs(fd, m);
	if (!ret && (fchmod(fd, m->mode & KEYSET_MODE_MASK) || futimens(fd, times) || fsync(fd)))
		ret = -errno;
	if (close(fd) && !ret)
		ret = -errno;
	return ret;
}

static int write_link(int pfd, const char *tmp, const struct keyset_member *m)
{
	struct timespec times[2] = { { m->mtime, 0 }, { m->mtime, 0 } };

	if (symlinkat(m->link, pfd, tmp))
		return -errno;
	/* A link has no fd to fchown: the *at calls never follow it. */
	if (m->owned && fchownat(pfd, tmp, m->uid, m->gid, AT_SYMLINK_NOFOLLOW))
		return -errno;
	return utimensat(pfd, tmp, times, AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

/* A directory is made 0700 so that its members can be written; its
 * mode and time come last (finish_dir). */
static int write_dir(int pfd, const char *tmp, const struct keyset_member *m)
{
	int fd, ret;

	if (mkdirat(pfd, tmp, 0700))
		return -errno;
	fd = openat(pfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = set_attrs(fd, m);
	close(fd);
	return ret;
}

/* Files and links; directories are made by keytree_dir_make(). */
int keytree_member_write_tmp(int dfd, struct keytree_pins *pins, const struct keyset_member *m)
{
	char tmp[KEYSET_PATH_MAX + sizeof(TMP_FMT)];
	const char *base;
	int pfd, ret;

	pfd = keytree_open_parent(dfd, pins, m->name, &base);
	if (pfd < 0)
		return pfd;
	snprintf(tmp, sizeof(tmp), TMP_FMT, base);
	unlinkat(pfd, tmp, 0); /* a crash's leftover */
	ret = m->type == KEYSET_LINK ? write_link(pfd, tmp, m) : write_file(pfd, tmp, m);
	if (ret)
		unlinkat(pfd, tmp, 0);
	close(pfd);
	return ret;
}

/* Never a hard link into place: rename, atomic over an old file. */
int keytree_member_commit(int dfd, struct keytree_pins *pins, const struct keyset_member *m)
{
	char tmp[KEYSET_PATH_MAX + sizeof(TMP_FMT)];
	const char *base;
	int pfd, ret = 0;

	pfd = keytree_open_parent(dfd, pins, m->name, &base);
	if (pfd < 0)
		return pfd;
	snprintf(tmp, sizeof(tmp), TMP_FMT, base);
	if (renameat(pfd, tmp, pfd, base))
		ret = -errno;
	close(pfd);
	return ret;
}

void keytree_member_drop_tmp(int dfd, struct keytree_pins *pins, const struct keyset_member *m)
{
	char tmp[KEYSET_PATH_MAX + sizeof(TMP_FMT)];
	const char *base;
	int pfd;

	pfd = keytree_open_parent(dfd, pins, m->name, &base);
	if (pfd < 0)
		return;
	snprintf(tmp, sizeof(tmp), TMP_FMT, base);
	unlinkat(pfd, tmp, 0);
	close(pfd);
}

bool keytree_is_tmp(const char *name)
{
	size_t n = strlen(name), suffix = strlen(".keyfs-new");

	return n > suffix + 1 && name[0] == '.' && !strcmp(name + n - suffix, ".keyfs-new");
}

int keytree_dir_make(int dfd, struct keytree_pins *pins, const struct keyset_member *m,
		     bool *made)
{
	const char *base;
	int pfd, fd, ret = 0;

	*made = false;
	fd = open_dir(dfd, pins, m);
	if (fd != -ENOENT)
		goto out;
	pfd = keytree_open_parent(dfd, pins, m->name, &base);
	if (pfd < 0)
		return pfd;
	ret = write_dir(pfd, base, m);
	close(pfd);
	if (ret)
		return ret;
	*made = true;
	fd = open_dir(dfd, pins, m);
out:
	/* a file or a link where ks has a directory */
	if (fd == -ELOOP)
		return -ENOTDIR;
	if (fd >= 0)
		close(fd);
	return fd < 0 ? fd : ret;
}

static int write_member(int dfd, const struct keyset_member *m)
{
	char tmp[KEYSET_PATH_MAX + sizeof(TMP_FMT)];
	const char *base;
	int pfd, ret;

	if (m->type != KEYSET_DIR) {
		ret = keytree_member_write_tmp(dfd, NULL, m);
		if (ret == 0)
			ret = keytree_member_commit(dfd, NULL, m);
		if (ret)
			keytree_member_drop_tmp(dfd, NULL, m);
		return ret;
	}
	pfd = keytree_open_parent(dfd, NULL, m->name, &base);
	if (pfd < 0)
		return pfd;
	snprintf(tmp, sizeof(tmp), TMP_FMT, base);
	/* rename fails on an existing directory and replaces nothing here
	 * (the directory is fresh) */
	ret = write_dir(pfd, tmp, m);
	if (ret == 0 && renameat(pfd, tmp, pfd, base))
		ret = -errno;
	if (ret)
		unlinkat(pfd, tmp, AT_REMOVEDIR);
	close(pfd);
	return ret;
}

int keytree_dir_finish(int dfd, struct keytree_pins *pins, const struct keyset_member *m)
{
	struct timespec times[2] = { { m->mtime, 0 }, { m->mtime, 0 } };
	int fd, ret = 0;

	fd = open_dir(dfd, pins, m);
	if (fd < 0)
		return fd;
	/* fsync last: the entries renamed into it, its mode and its time */
	ret = set_attrs(fd, m);
	if (!ret && (fchmod(fd, m->mode & KEYSET_MODE_MASK) || futimens(fd, times) || fsync(fd)))
		ret = -errno;
	close(fd);
	return ret;
}

int keytree_top_finish(int dfd, const struct keyset *ks)
{
	if (!ks->top.owned)
		return 0;
	if (fchown(dfd, ks->top.uid, ks->top.gid) ||
	    fchmod(dfd, ks->top.mode & KEYSET_MODE_MASK) || fsync(dfd))
		return -errno;
	return 0;
}

int keytree_write(int dfd, const struct keyset *ks)
{
	size_t i;
	int ret;

	ret = keytree_owner_check(ks);
	if (ret)
		return ret;
	/* Sorted by path, so a directory comes before its members. */
	for (i = 0; ret == 0 && i < ks->n; i++)
		ret = write_member(dfd, &ks->m[i]);
	/* Deepest first: a directory's time is final once its members are
	 * in, and a 0500 directory is made so only after them. */
	for (i = ks->n; ret == 0 && i-- > 0;) {
		if (ks->m[i].type == KEYSET_DIR)
			ret = keytree_dir_finish(dfd, NULL, &ks->m[i]);
	}
	return ret ? ret : replace_dir_fsync(dfd, ".");
}

static void remove_tree(int dfd, const char *path, unsigned depth);

static int remove_one(int dirfd, const char *name, const struct stat *st, void *arg)
{
	unsigned depth = *(const unsigned *)arg;

	/* Bounded: a tree deeper than any keyset is left for a human. */
	if (S_ISDIR(st->st_mode) && depth <= KEYSET_DEPTH_MAX + 1)
		remove_tree(dirfd, name, depth + 1);
	else
		unlinkat(dirfd, name, 0);
	return 0;
}

static void remove_tree(int dfd, const char *path, unsigned depth)
{
	int fd;

	fd = openat(dfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		unlinkat(dfd, path, 0);
		return;
	}
	/* A 0500 directory written by a restore: writable again first. */
	fchmod(fd, 0700);
	close(fd);
	dirwalk_each(dfd, path, remove_one, &depth);
	unlinkat(dfd, path, AT_REMOVEDIR);
}

void keytree_remove(int dfd, const char *path)
{
	remove_tree(dfd, path, 0);
}
