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
#include "versions.h"

void sdir_clean_tmp(struct dir_store *d)
{
	versions_clean_tmp(d->sfd);
}

int sdir_versions(void *priv, const char *name, unsigned **v, size_t *n)
{
	struct dir_store *d = priv;

	*v = NULL;
	*n = 0;
	return versions_list(d->sfd, name, v, n);
}

static int put_locked(struct dir_store *d, const struct keyset *ks, struct store_put *res);

/* Restores and activations are serialized: both pick version numbers
 * and compare against directories the other renames. */
int sdir_put(void *priv, const struct keyset *ks, struct store_put *res)
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
	char tmp[PATH_MAX], raw[NAME_MAX + 1];
	bool same = false;
	int ret;

	ret = sdir_real_name(ks->name, raw);
	if (ret)
		return -EINVAL;
	ret = versions_same(d->dfd, raw, ks, &same);
	if (ret == -ENOENT && res->inactive)
		return versions_put(d->sfd, ks, res); /* activated on request only */
	if (ret == -ENOENT) {
		ret = versions_write_tmp(d->sfd, ks, tmp);
		if (!ret)
			ret = versions_commit_tmp(d->sfd, tmp, d->dfd, raw, ".");
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
	return versions_put(d->sfd, ks, res);
}

static int activate_locked(struct dir_store *d, const char *name, unsigned version, unsigned *kept);

int sdir_activate(void *priv, const char *name, unsigned version, unsigned *kept)
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
	char dir[128], src[PATH_MAX], dst[PATH_MAX], raw[NAME_MAX + 1];
	struct stat st;
	unsigned *v;
	size_t n;
	int ret;

	*kept = 0;
	if (sdir_real_name(name, raw))
		return -ENOENT;
	snprintf(dir, sizeof(dir), VERSIONS_DIR "/%s", name);
	snprintf(src, sizeof(src), "%s/%u", dir, version);
	if (fstatat(d->sfd, src, &st, AT_SYMLINK_NOFOLLOW) || !S_ISDIR(st.st_mode))
		return -ENOENT;
	/* Only a directory of keys is swapped out and kept as a version; a
	 * file or link in its place is not a keyset to keep. */
	if (!fstatat(d->dfd, raw, &st, AT_SYMLINK_NOFOLLOW) && !S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (renameat2(d->sfd, src, d->dfd, raw, RENAME_EXCHANGE)) {
		if (errno != ENOENT)
			return -errno;
		/* no active keys: the version simply moves in */
		if (renameat(d->sfd, src, d->dfd, raw))
			return -errno;
		ret = replace_dir_fsync(d->dfd, ".");
		return ret ? ret : replace_dir_fsync(d->sfd, dir);
	}
	ret = replace_dir_fsync(d->dfd, ".");
	if (ret)
		return ret;
	/* The replaced keys sit at src now; give them the next number. */
	ret = sdir_versions(d, name, &v, &n);
	if (ret)
		return ret;
	*kept = n ? v[n - 1] + 1 : version;
	free(v);
	snprintf(dst, sizeof(dst), "%s/%u", dir, *kept);
	if (*kept == version || renameat(d->sfd, src, d->sfd, dst)) {
		*kept = version; /* still safe, kept under the old number */
		return 0;
	}
	return replace_dir_fsync(d->sfd, dir);
}
