/* Inactive versions of keysets in keyfs' state directory, for every
 * backend that keeps them there: STATE_VERSIONS/<keyset>/<N>/ holds a
 * keyset as a tree (keytree.h), written complete under STATE_TMP and
 * renamed into place. Nothing is ever deleted but by an activation that
 * moved a version elsewhere. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "keyfs/dirwalk.h"
#include "keyfs/keytree.h"
#include "keyfs/replace.h"
#include "keyfs/state.h"

#include "versions.h"

static int remove_one(int dirfd, const char *name, const struct stat *st, void *arg)
{
	(void)st;
	(void)arg;
	keytree_remove(dirfd, name);
	return 0;
}

void versions_clean_tmp(int sfd)
{
	dirwalk_each(sfd, STATE_TMP, remove_one, NULL);
}

int versions_write_tmp(int sfd, const struct keyset *ks, char tmp[static PATH_MAX])
{
	uint32_t r = randombytes_random();
	int fd = -1, ret;

	/* Nothing is written for a keyset this process cannot restore. */
	ret = keytree_owner_check(ks);
	if (ret)
		return ret;
	snprintf(tmp, PATH_MAX, STATE_TMP "/%s.%08x", ks->name, r);
	if (mkdirat(sfd, tmp, 0700))
		return -errno;
	fd = openat(sfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	ret = keytree_write(fd, ks);
out:
	if (fd >= 0)
		close(fd);
	if (ret)
		keytree_remove(sfd, tmp);
	return ret;
}

static int cmp_unsigned(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return x < y ? -1 : x > y;
}

struct version_list {
	unsigned *v;
	size_t n;
};

static int version_one(int dirfd, const char *name, const struct stat *st, void *arg)
{
	struct version_list *l = arg;
	unsigned long num;
	unsigned *grown;
	char *end;

	(void)dirfd;
	num = strtoul(name, &end, 10);
	if (*end || name[0] < '1' || name[0] > '9' || num > 999999 || !S_ISDIR(st->st_mode))
		return 0;
	grown = realloc(l->v, (l->n + 1) * sizeof(*l->v));
	if (!grown)
		return -ENOMEM;
	l->v = grown;
	l->v[l->n++] = (unsigned)num;
	return 0;
}

int versions_list(int sfd, const char *name, unsigned **v, size_t *n)
{
	struct version_list l = { NULL, 0 };
	char path[PATH_MAX];
	int ret;

	*v = NULL;
	*n = 0;
	if (!keyset_name_valid(name))
		return -ENOENT;
	snprintf(path, sizeof(path), STATE_VERSIONS "/%s", name);
	ret = dirwalk_each(sfd, path, version_one, &l);
	if (ret == -ENOENT)
		ret = 0; /* no versions yet */
	if (ret) {
		free(l.v);
		return ret;
	}
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), cmp_unsigned);
	*v = l.v;
	*n = l.n;
	return 0;
}

int versions_same(int dfd, const char *path, const struct keyset *ks, bool *same)
{
	struct keyset cur = { 0 };
	int fd, ret;

	fd = openat(dfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = keytree_read(fd, ks->name, &cur, NULL, 0);
	close(fd);
	if (!ret)
		*same = keyset_equal(&cur, ks);
	keyset_clear(&cur);
	return ret;
}

int versions_commit_tmp(int sfd, const char *tmp, int dfd, const char *dst, const char *parent)
{
	int ret;

	if (renameat(sfd, tmp, dfd, dst)) {
		ret = -errno;
		keytree_remove(sfd, tmp);
		return ret;
	}
	return replace_dir_fsync(dfd, parent);
}

int versions_put(int sfd, const struct keyset *ks, struct store_put *res)
{
	char tmp[PATH_MAX], dir[128], dst[PATH_MAX];
	unsigned *v, next;
	size_t n, i;
	bool same;
	int ret;

	ret = versions_list(sfd, ks->name, &v, &n);
	if (ret)
		return ret;
	snprintf(dir, sizeof(dir), STATE_VERSIONS "/%s", ks->name);
	for (i = 0; i < n; i++) {
		snprintf(dst, sizeof(dst), "%s/%u", dir, v[i]);
		/* a version that cannot be read is no match, and no reason to
		 * refuse every later restore of the keyset */
		if (versions_same(sfd, dst, ks, &same) || !same)
			continue;
		res->outcome = STORE_KNOWN;
		res->version = v[i];
		ret = res->unauthenticated ? versions_mark(sfd, ks->name, v[i], res->unauthenticated) : 0;
		goto out;
	}
	next = n ? v[n - 1] + 1 : 1;
	if (mkdirat(sfd, dir, 0700) && errno != EEXIST) {
		ret = -errno;
		goto out;
	}
	ret = versions_write_tmp(sfd, ks, tmp);
	if (ret)
		goto out;
	snprintf(dst, sizeof(dst), "%s/%u", dir, next);
	/* Marked before it is listed; unmarked, a mark a kill left from
	 * an earlier holder of the number. */
	if (res->unauthenticated)
		ret = versions_mark(sfd, ks->name, next, res->unauthenticated);
	else
		versions_unmark(sfd, ks->name, next);
	if (ret == 0)
		ret = versions_commit_tmp(sfd, tmp, sfd, dst, dir);
	else
		keytree_remove(sfd, tmp);
	if (ret)
		versions_unmark(sfd, ks->name, next);
	res->outcome = STORE_VERSIONED;
	res->version = next;
out:
	free(v);
	return ret;
}

int versions_read(int sfd, const char *name, unsigned version, struct keyset *ks)
{
	char path[PATH_MAX];
	int fd, ret;

	if (!keyset_name_valid(name))
		return -ENOENT;
	snprintf(path, sizeof(path), STATE_VERSIONS "/%s/%u", name, version);
	fd = openat(sfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = keytree_read(fd, name, ks, NULL, 0);
	close(fd);
	return ret;
}

/* Out of the list in one rename, then deleted: a kill while deleting
 * file by file would otherwise leave part of a version, and activating
 * that part later deletes the missing files from the live keys. What a
 * kill leaves under STATE_TMP goes at the next start. */
void versions_remove(int sfd, const char *name, unsigned version)
{
	char dir[128], path[PATH_MAX], gone[PATH_MAX];

	snprintf(dir, sizeof(dir), STATE_VERSIONS "/%s", name);
	snprintf(path, sizeof(path), "%s/%u", dir, version);
	snprintf(gone, sizeof(gone), STATE_TMP "/%s.%u.%08x", name, version, randombytes_random());
	if (renameat(sfd, path, sfd, gone))
		return;
	replace_dir_fsync(sfd, dir);
	versions_unmark(sfd, name, version);
	keytree_remove(sfd, gone);
}

void versions_unmark(int sfd, const char *name, unsigned version)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), STATE_VERSIONS "/%s/%u" VERSIONS_UNAUTH, name, version);
	unlinkat(sfd, path, 0);
}

int versions_mark(int sfd, const char *name, unsigned version, const char *fpr)
{
	char path[PATH_MAX], text[128];
	struct iovec iov = { text, 0 };

	iov.iov_len = (size_t)snprintf(text, sizeof(text), "%s\n", fpr);
	snprintf(path, sizeof(path), STATE_VERSIONS "/%s/%u" VERSIONS_UNAUTH, name, version);
	return replace_file(sfd, path, &iov, 1);
}

bool versions_marked(int sfd, const char *name, unsigned version, char *fpr, size_t size)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), STATE_VERSIONS "/%s/%u" VERSIONS_UNAUTH, name, version);
	fd = openat(sfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno != ENOENT; /* unreadable: not vouched for either */
	n = read(fd, fpr, size - 1);
	close(fd);
	fpr[n > 0 ? n : 0] = '\0';
	fpr[strcspn(fpr, "\n")] = '\0';
	return true;
}
