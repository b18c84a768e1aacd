/* Writing the directory keystore: restore and activation.
 *
 * Nothing is ever deleted. A keyset is written complete into
 * .keyfs/tmp/ (keytree_write(): nested directories, links, owners,
 * xattrs), each file fsynced, then renamed into place in one step
 * (the active <dir>/<keyset>/ or .keyfs/versions/<keyset>/<N>/), and the
 * parent fsynced. Activation swaps the two directories with one
 * RENAME_EXCHANGE, so a crash leaves either the old or the new keys
 * active, never a mix; the replaced keys then get the next version number. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/dirwalk.h"
#include "keyfs/keytree.h"
#include "keyfs/replace.h"
#include "keyfs/store.h"
#include "store_dir.h"


static int remove_one(int dirfd, const char *name, const struct stat *st, void *arg)
{
	(void)st;
	(void)arg;
	keytree_remove(dirfd, name);
	return 0;
}

void dir_clean_tmp(struct dir_store *d)
{
	dir_each(d->sfd, TMP_DIR, remove_one, NULL);
}

/* Writes ks complete into a fresh directory under TMP_DIR; tmp receives
 * its path relative to the store. */
static int write_tmp(struct dir_store *d, const struct keyset *ks, char tmp[static PATH_MAX])
{
	uint32_t r = randombytes_random();
	int fd = -1, ret;

	/* Nothing is written for a keyset this process cannot restore. */
	ret = keytree_owner_check(ks);
	if (ret)
		return ret;
	snprintf(tmp, PATH_MAX, TMP_DIR "/%s.%08x", ks->name, r);
	if (mkdirat(d->sfd, tmp, 0700))
		return -errno;
	fd = openat(d->sfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	ret = keytree_write(fd, ks);
out:
	if (fd >= 0)
		close(fd);
	if (ret)
		keytree_remove(d->sfd, tmp);
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

int dir_versions(void *priv, const char *name, unsigned **v, size_t *n)
{
	struct dir_store *d = priv;
	struct version_list l = { NULL, 0 };
	char path[PATH_MAX];
	int ret;

	*v = NULL;
	*n = 0;
	if (!keyset_name_valid(name))
		return -ENOENT;
	snprintf(path, sizeof(path), VERSIONS_DIR "/%s", name);
	ret = dir_each(d->sfd, path, version_one, &l);
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

/* Is ks equal to the keys in directory dfd/path? */
static int same_as(int dfd, const char *path, const struct keyset *ks, bool *same)
{
	struct keyset cur = { 0 };
	int fd, ret;

	fd = openat(dfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = dir_read_fd(fd, ks->name, &cur);
	close(fd);
	if (!ret)
		*same = keyset_equal(&cur, ks);
	keyset_clear(&cur);
	return ret;
}

/* Places the written tmp directory at dfd/dst (which must not exist). */
static int commit_tmp(struct dir_store *d, const char *tmp, int dfd, const char *dst,
		      const char *parent)
{
	int ret;

	if (renameat(d->sfd, tmp, dfd, dst)) {
		ret = -errno;
		keytree_remove(d->sfd, tmp);
		return ret;
	}
	return dir_fsync(dfd, parent);
}

static int put_version(struct dir_store *d, const struct keyset *ks, struct store_put *res)
{
	char tmp[PATH_MAX], dir[128], dst[PATH_MAX];
	unsigned *v, next;
	size_t n, i;
	bool same;
	int ret;

	ret = dir_versions(d, ks->name, &v, &n);
	if (ret)
		return ret;
	snprintf(dir, sizeof(dir), VERSIONS_DIR "/%s", ks->name);
	for (i = 0; i < n; i++) {
		snprintf(dst, sizeof(dst), "%s/%u", dir, v[i]);
		/* a version that cannot be read is no match, and no reason to
		 * refuse every later restore of the keyset */
		if (same_as(d->sfd, dst, ks, &same) || !same)
			continue;
		res->outcome = STORE_KNOWN;
		res->version = v[i];
		ret = 0;
		goto out;
	}
	next = n ? v[n - 1] + 1 : 1;
	if (mkdirat(d->sfd, dir, 0700) && errno != EEXIST) {
		ret = -errno;
		goto out;
	}
	ret = write_tmp(d, ks, tmp);
	if (ret)
		goto out;
	snprintf(dst, sizeof(dst), "%s/%u", dir, next);
	ret = commit_tmp(d, tmp, d->sfd, dst, dir);
	res->outcome = STORE_VERSIONED;
	res->version = next;
out:
	free(v);
	return ret;
}

static int put_locked(struct dir_store *d, const struct keyset *ks, struct store_put *res);

/* Restores and activations are serialized: both pick version numbers
 * and compare against directories the other renames. */
int dir_put(void *priv, const struct keyset *ks, struct store_put *res)
{
	struct dir_store *d = priv;
	int ret;

	pthread_mutex_lock(&d->write_lock);
	ret = put_locked(d, ks, res);
	pthread_mutex_unlock(&d->write_lock);
	return ret;
}

static int put_locked(struct dir_store *d, const struct keyset *ks, struct store_put *res)
{
	char tmp[PATH_MAX];
	bool same = false;
	int ret;

	if (!keyset_name_valid(ks->name))
		return -EINVAL;
	ret = same_as(d->dfd, ks->name, ks, &same);
	if (ret == -ENOENT) {
		ret = write_tmp(d, ks, tmp);
		if (!ret)
			ret = commit_tmp(d, tmp, d->dfd, ks->name, ".");
		res->outcome = STORE_CREATED;
		res->version = 0;
		return ret;
	}
	if (ret)
		return ret;
	if (same) {
		res->outcome = STORE_UNCHANGED;
		res->version = 0;
		return 0;
	}
	return put_version(d, ks, res);
}

static int activate_locked(struct dir_store *d, const char *name, unsigned version, unsigned *kept);

int dir_activate(void *priv, const char *name, unsigned version, unsigned *kept)
{
	struct dir_store *d = priv;
	int ret;

	pthread_mutex_lock(&d->write_lock);
	ret = activate_locked(d, name, version, kept);
	pthread_mutex_unlock(&d->write_lock);
	return ret;
}

static int activate_locked(struct dir_store *d, const char *name, unsigned version, unsigned *kept)
{
	char dir[128], src[PATH_MAX], dst[PATH_MAX];
	struct stat st;
	unsigned *v;
	size_t n;
	int ret;

	*kept = 0;
	if (!keyset_name_valid(name))
		return -ENOENT;
	snprintf(dir, sizeof(dir), VERSIONS_DIR "/%s", name);
	snprintf(src, sizeof(src), "%s/%u", dir, version);
	if (fstatat(d->sfd, src, &st, AT_SYMLINK_NOFOLLOW) || !S_ISDIR(st.st_mode))
		return -ENOENT;
	/* Only a directory of keys is swapped out and kept as a version; a
	 * file or link in its place is not a keyset to keep. */
	if (!fstatat(d->dfd, name, &st, AT_SYMLINK_NOFOLLOW) && !S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (renameat2(d->sfd, src, d->dfd, name, RENAME_EXCHANGE)) {
		if (errno != ENOENT)
			return -errno;
		/* no active keys: the version simply moves in */
		if (renameat(d->sfd, src, d->dfd, name))
			return -errno;
		ret = dir_fsync(d->dfd, ".");
		return ret ? ret : dir_fsync(d->sfd, dir);
	}
	ret = dir_fsync(d->dfd, ".");
	if (ret)
		return ret;
	/* The replaced keys sit at src now; give them the next number. */
	ret = dir_versions(d, name, &v, &n);
	if (ret)
		return ret;
	*kept = n ? v[n - 1] + 1 : version;
	free(v);
	snprintf(dst, sizeof(dst), "%s/%u", dir, *kept);
	if (*kept == version || renameat(d->sfd, src, d->sfd, dst)) {
		*kept = version; /* still safe, kept under the old number */
		return 0;
	}
	return dir_fsync(d->sfd, dir);
}
