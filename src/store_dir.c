/* The directory keystore: <dir>/<keyset>/<member> are the active keys,
 * <dir>/.keyfs/ holds keyfs' own state. Keys are only read here; writes
 * (import, activate, metadata) go through temp file, fsync, rename and a
 * directory fsync so a crash leaves the old or the new, never a mix. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/dirwalk.h"
#include "keyfs/log.h"
#include "keyfs/replace.h"
#include "keyfs/store.h"
#include "store_dir.h"

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void store_names_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

struct name_list {
	char **names;
	size_t n;
};

struct member_walk {
	int (*fn)(int kfd, const char *name, const struct stat *st, void *arg);
	void *arg;
};

static int member_one(int dirfd, const char *name, const struct stat *st, void *arg)
{
	struct member_walk *w = arg;

	return name[0] == '.' ? 0 : w->fn(dirfd, name, st, w->arg);
}

static int push_name(char ***names, size_t *n, const char *name)
{
	char **grown;

	grown = realloc(*names, (*n + 1) * sizeof(**names));
	if (!grown)
		return -ENOMEM;
	*names = grown;
	grown[*n] = strdup(name);
	if (!grown[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

static int list_one(int dirfd, const char *name, const struct stat *st, void *arg)
{
	struct name_list *l = arg;

	(void)dirfd;
	if (!keyset_name_valid(name) || !S_ISDIR(st->st_mode))
		return 0;
	return push_name(&l->names, &l->n, name);
}

static int dir_list(void *priv, char ***names, size_t *n)
{
	struct dir_store *d = priv;
	struct name_list l = { NULL, 0 };
	int ret;

	ret = dir_each(d->dfd, ".", list_one, &l);
	if (ret) {
		store_names_free(l.names, l.n);
		l.names = NULL;
		l.n = 0;
	}
	if (l.n)
		qsort(l.names, l.n, sizeof(*l.names), cmp_names);
	*names = l.names;
	*n = l.n;
	return ret;
}

static int open_keyset(struct dir_store *d, const char *name)
{
	int fd;

	if (!keyset_name_valid(name))
		return -ENOENT;
	fd = openat(d->dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Calls fn for each key file of a keyset directory; names starting
 * with a dot (editors' and keyfs' temporary files) are not keys. */
static int each_member(int kfd, int (*fn)(int kfd, const char *name, const struct stat *st, void *arg),
		       void *arg)
{
	struct member_walk w = { fn, arg };

	return dir_each(kfd, ".", member_one, &w);
}

/* Only flat, regular, well-named files are keys: anything else would be
 * silently missing from a backup, so it fails the keyset loudly. */
static int member_ok(const char *name, const struct stat *st)
{
	if (!S_ISREG(st->st_mode) || !keyset_member_name_valid(name) ||
	    st->st_size > STORE_MEMBER_MAX) {
		log_msg(LOG_WARNING, "store: member \"%s\" is not a small regular file with a valid name", name);
		return -EINVAL;
	}
	return 0;
}

static int stamp_member(int kfd, const char *name, const struct stat *st, void *arg)
{
	uint64_t *acc = arg;
	uint8_t h[8];
	crypto_generichash_state s;
	int ret;

	(void)kfd;
	ret = member_ok(name, st);
	if (ret)
		return ret;
	/* Order-independent: XOR of per-member hashes. */
	crypto_generichash_init(&s, NULL, 0, sizeof(h));
	crypto_generichash_update(&s, (const uint8_t *)name, strlen(name) + 1);
	crypto_generichash_update(&s, (const uint8_t *)&st->st_ino, sizeof(st->st_ino));
	crypto_generichash_update(&s, (const uint8_t *)&st->st_size, sizeof(st->st_size));
	crypto_generichash_update(&s, (const uint8_t *)&st->st_mode, sizeof(st->st_mode));
	crypto_generichash_update(&s, (const uint8_t *)&st->st_mtim, sizeof(st->st_mtim));
	crypto_generichash_update(&s, (const uint8_t *)&st->st_ctim, sizeof(st->st_ctim));
	crypto_generichash_final(&s, h, sizeof(h));
	for (size_t i = 0; i < sizeof(h); i++)
		acc[0] ^= (uint64_t)h[i] << (8 * i);
	acc[1]++;
	return 0;
}

static int dir_stamp(void *priv, const char *name, uint64_t *stamp)
{
	uint64_t acc[2] = { 0, 0 };
	int kfd, ret;

	kfd = open_keyset(priv, name);
	if (kfd < 0)
		return kfd;
	ret = each_member(kfd, stamp_member, acc);
	close(kfd);
	*stamp = acc[0] ^ (acc[1] * 0x9e3779b97f4a7c15ULL);
	return ret;
}

static int read_member(int kfd, const char *name, const struct stat *st, void *arg)
{
	struct keyset *ks = arg;
	uint8_t *buf = NULL;
	ssize_t n = 0;
	size_t len = 0;
	int fd, ret;

	ret = member_ok(name, st);
	if (ret)
		return ret;
	fd = openat(kfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (st->st_size) {
		buf = sodium_malloc((size_t)st->st_size + 1);
		if (!buf) {
			ret = -ENOMEM;
			goto out;
		}
	}
	/* Read one byte more than stat said, to notice a file that grew. */
	while (buf && len <= (size_t)st->st_size &&
	       (n = read(fd, buf + len, (size_t)st->st_size + 1 - len)) > 0)
		len += (size_t)n;
	if (buf && n < 0) {
		ret = -errno;
		goto out;
	}
	if (len != (size_t)st->st_size) {
		ret = -EAGAIN; /* changed under us: the caller retries */
		goto out;
	}
	ret = keyset_add(ks, name, st->st_mode & 07777, st->st_mtime, buf, len);
out:
	if (buf)
		sodium_free(buf);
	close(fd);
	return ret;
}

int dir_read_fd(int kfd, const char *name, struct keyset *ks)
{
	int ret, tries = 0;

	do {
		keyset_clear(ks);
		snprintf(ks->name, sizeof(ks->name), "%s", name);
		ret = each_member(kfd, read_member, ks);
	} while (ret == -EAGAIN && ++tries < 5);
	if (ret)
		keyset_clear(ks);
	else
		keyset_sort(ks);
	return ret;
}

static int dir_read(void *priv, const char *name, struct keyset *ks)
{
	int kfd, ret;

	kfd = open_keyset(priv, name);
	if (kfd < 0)
		return kfd;
	ret = dir_read_fd(kfd, name, ks);
	close(kfd);
	return ret;
}

static int meta_path(struct dir_store *d, const char *key, char *path, size_t size)
{
	const char *p;

	for (p = key; *p; p++)
		if (*p == '/' || (p == key && *p == '.'))
			return -EINVAL;
	if (!*key || snprintf(path, size, STATE_DIR "/meta/%s", key) >= (int)size)
		return -EINVAL;
	(void)d;
	return 0;
}

static int dir_meta_get(void *priv, const char *key, char *buf, size_t size)
{
	struct dir_store *d = priv;
	char path[PATH_MAX];
	ssize_t n;
	int fd, ret;

	ret = meta_path(d, key, path, sizeof(path));
	if (ret)
		return ret;
	fd = openat(d->dfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	ret = n < 0 ? -errno : 0;
	close(fd);
	if (!ret)
		buf[n] = '\0';
	return ret;
}

int dir_mkdirs(struct dir_store *d)
{
	static const char *const dirs[] = { STATE_DIR, STATE_DIR "/meta", VERSIONS_DIR, TMP_DIR };
	size_t i;

	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (mkdirat(d->dfd, dirs[i], 0700) && errno != EEXIST)
			return -errno;
	return 0;
}

static int dir_meta_set(void *priv, const char *key, const char *value)
{
	struct dir_store *d = priv;
	char path[PATH_MAX];
	int ret;

	ret = meta_path(d, key, path, sizeof(path));
	if (ret)
		return ret;
	ret = dir_mkdirs(d);
	if (ret)
		return ret;
	if (!*value)
		return unlinkat(d->dfd, path, 0) && errno != ENOENT ? -errno : 0;
	return file_replace(d->dfd, path, &(struct iovec){ (void *)value, strlen(value) }, 1);
}

static void dir_destroy(void *priv)
{
	struct dir_store *d = priv;

	close(d->dfd);
	pthread_mutex_destroy(&d->write_lock);
	free(d);
}

static const struct store_ops dir_ops = {
	.list = dir_list,
	.stamp = dir_stamp,
	.read = dir_read,
	.meta_get = dir_meta_get,
	.meta_set = dir_meta_set,
	.put = dir_put,
	.versions = dir_versions,
	.activate = dir_activate,
	.destroy = dir_destroy,
};

int store_dir_open(const char *dir, struct store *s)
{
	struct dir_store *d;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->dfd < 0) {
		int ret = -errno;

		free(d);
		return ret;
	}
	pthread_mutex_init(&d->write_lock, NULL);
	snprintf(d->state, sizeof(d->state), "%s/" STATE_DIR, dir);
	dir_clean_tmp(d);
	s->ops = &dir_ops;
	s->priv = d;
	return 0;
}

const char *store_dir_state(const struct store *s)
{
	struct dir_store *d = s->priv;

	if (s->ops != &dir_ops || dir_mkdirs(d))
		return NULL;
	return d->state;
}
