/* Writing a keyset as a directory tree, and removing a tree
 * (keytree.h). Every member is created under a temporary name in its
 * directory, given its owner, mode, xattrs and time, fsynced and then
 * renamed: a reader of the directory never sees a half-made key. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
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

int keytree_open_parent(int dfd, const char *path, const char **base)
{
	char comp[KEYSET_MEMBER_NAME_MAX + 1];
	const char *p = path, *slash;
	int fd = dup(dfd), next;

	while (fd >= 0 && (slash = strchr(p, '/')) != NULL) {
		snprintf(comp, sizeof(comp), "%.*s", (int)(slash - p), p);
		next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		fd = next;
		p = slash + 1;
	}
	*base = p;
	return fd < 0 ? -errno : fd;
}

static int set_xattrs(int fd, const struct keyset_member *m)
{
	size_t i;

	for (i = 0; i < m->nxattr; i++) {
		const struct keyset_xattr *x = &m->xattr[i];

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
	if (m->len && write(fd, m->data, m->len) != (ssize_t)m->len)
		ret = errno ? -errno : -EIO;
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
int keytree_member_write_tmp(int dfd, const struct keyset_member *m)
{
	char tmp[KEYSET_PATH_MAX + sizeof(TMP_FMT)];
	const char *base;
	int pfd, ret;

	pfd = keytree_open_parent(dfd, m->name, &base);
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
int keytree_member_commit(int dfd, const struct keyset_member *m)
{
	char tmp[KEYSET_PATH_MAX + sizeof(TMP_FMT)];
	const char *base;
	int pfd, ret = 0;

	pfd = keytree_open_parent(dfd, m->name, &base);
	if (pfd < 0)
		return pfd;
	snprintf(tmp, sizeof(tmp), TMP_FMT, base);
	if (renameat(pfd, tmp, pfd, base))
		ret = -errno;
	close(pfd);
	return ret;
}

void keytree_member_drop_tmp(int dfd, const struct keyset_member *m)
{
	char tmp[KEYSET_PATH_MAX + sizeof(TMP_FMT)];
	const char *base;
	int pfd;

	pfd = keytree_open_parent(dfd, m->name, &base);
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

int keytree_dir_make(int dfd, const struct keyset_member *m)
{
	const char *base;
	int pfd, ret;

	pfd = keytree_open_parent(dfd, m->name, &base);
	if (pfd < 0)
		return pfd;
	ret = write_dir(pfd, base, m);
	close(pfd);
	return ret;
}

static int write_member(int dfd, const struct keyset_member *m)
{
	char tmp[KEYSET_PATH_MAX + sizeof(TMP_FMT)];
	const char *base;
	int pfd, ret;

	if (m->type != KEYSET_DIR) {
		ret = keytree_member_write_tmp(dfd, m);
		if (ret == 0)
			ret = keytree_member_commit(dfd, m);
		if (ret)
			keytree_member_drop_tmp(dfd, m);
		return ret;
	}
	pfd = keytree_open_parent(dfd, m->name, &base);
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

int keytree_dir_finish(int dfd, const struct keyset_member *m)
{
	struct timespec times[2] = { { m->mtime, 0 }, { m->mtime, 0 } };
	int fd, ret = 0;

	fd = openat(dfd, m->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* fsync last: the entries renamed into it, its mode and its time */
	ret = set_attrs(fd, m);
	if (!ret && (fchmod(fd, m->mode & KEYSET_MODE_MASK) || futimens(fd, times) || fsync(fd)))
		ret = -errno;
	close(fd);
	return ret;
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
			ret = keytree_dir_finish(dfd, &ks->m[i]);
	}
	return ret ? ret : dir_fsync(dfd, ".");
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
	dir_each(dfd, path, remove_one, &depth);
	unlinkat(dfd, path, AT_REMOVEDIR);
}

void keytree_remove(int dfd, const char *path)
{
	remove_tree(dfd, path, 0);
}
