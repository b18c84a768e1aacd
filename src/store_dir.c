/* The directory keystore, reading: <dir>/<keyset>/<member> are the
 * active keys (store_version.c writes them). Inactive versions and
 * temporaries sit in keyfs' state directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
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

struct name_list {
	char **names;
	size_t n;
};

struct member_walk {
	int (*fn)(int kfd, const char *name, const struct stat *st, void *arg);
	void *arg;
	size_t entries, members;
	off_t bytes;
	char *why;		/* optional: what is wrong, for the report */
	size_t why_size;
};

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

int dir_list(void *priv, char ***names, size_t *n)
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

static int refuse(struct member_walk *w, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int refuse(struct member_walk *w, int err, const char *fmt, ...)
{
	va_list ap;

	if (w->why) {
		va_start(ap, fmt);
		vsnprintf(w->why, w->why_size, fmt, ap);
		va_end(ap);
	}
	return err;
}

/* Only flat, regular, singly linked, well-named files are keys, and a
 * keyset stays within bounds that keep sealing cheap: anything else would
 * be silently missing from a backup or exhaust the daemon, so it fails
 * the keyset, and says why. */
static int member_check(struct member_walk *w, const char *name, const struct stat *st)
{
	if (++w->entries > STORE_ENTRIES_MAX)
		return refuse(w, -E2BIG, "more than %d directory entries (dot files included)",
			      STORE_ENTRIES_MAX);
	if (name[0] == '.')
		return 0; /* editors' and keyfs' temporary files are not keys */
	if (!keyset_member_name_valid(name))
		return refuse(w, -EINVAL, "member \"%s\": a name outside [A-Za-z0-9._-]{1,64}", name);
	if (!S_ISREG(st->st_mode))
		return refuse(w, -EINVAL, "member \"%s\": not a regular file", name);
	if (st->st_nlink != 1)
		return refuse(w, -EINVAL, "member \"%s\": hard-linked (a key file has one link)", name);
	if (st->st_size > STORE_MEMBER_MAX)
		return refuse(w, -EFBIG, "member \"%s\": larger than 1 MiB", name);
	if (++w->members > KEYSET_MEMBERS_MAX)
		return refuse(w, -E2BIG, "more than %d key files", KEYSET_MEMBERS_MAX);
	w->bytes += st->st_size;
	if (w->bytes > STORE_KEYSET_MAX)
		return refuse(w, -EFBIG, "key files larger than %d MiB in all", STORE_KEYSET_MAX >> 20);
	return 1;
}

static int member_one(int dirfd, const char *name, const struct stat *st, void *arg)
{
	struct member_walk *w = arg;
	int ret;

	ret = member_check(w, name, st);
	return ret <= 0 ? ret : w->fn(dirfd, name, st, w->arg);
}

/* Calls fn for each key file of a keyset directory after checking it. */
static int each_member(int kfd, struct member_walk *w)
{
	return dir_each(kfd, ".", member_one, w);
}

static int stamp_member(int kfd, const char *name, const struct stat *st, void *arg)
{
	uint64_t *acc = arg;
	uint8_t h[8];
	crypto_generichash_state s;

	(void)kfd;
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

static int walk_keyset(void *priv, const char *name, struct member_walk *w)
{
	int kfd, ret;

	kfd = open_keyset(priv, name);
	if (kfd < 0)
		return kfd;
	ret = each_member(kfd, w);
	close(kfd);
	return ret;
}

int dir_stamp(void *priv, const char *name, uint64_t *stamp)
{
	uint64_t acc[2] = { 0, 0 };
	struct member_walk w = { .fn = stamp_member, .arg = acc };
	int ret;

	ret = walk_keyset(priv, name, &w);
	*stamp = acc[0] ^ (acc[1] * 0x9e3779b97f4a7c15ULL);
	return ret;
}

int dir_why(void *priv, const char *name, char *why, size_t size)
{
	uint64_t acc[2] = { 0, 0 };
	struct member_walk w = { .fn = stamp_member, .arg = acc, .why = why, .why_size = size };

	*why = '\0';
	return walk_keyset(priv, name, &w);
}

static int read_member(int kfd, const char *name, const struct stat *st, void *arg)
{
	struct keyset *ks = arg;
	uint8_t *buf = NULL;
	ssize_t n = 0;
	size_t len = 0;
	int fd, ret;

	fd = file_open_regular(kfd, name, st, NULL);
	if (fd < 0)
		return fd == -EINVAL ? -EAGAIN : fd; /* it changed since the walk */
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
		struct member_walk w = { .fn = read_member, .arg = ks };

		keyset_clear(ks);
		snprintf(ks->name, sizeof(ks->name), "%s", name);
		ret = each_member(kfd, &w);
	} while (ret == -EAGAIN && ++tries < 5);
	if (ret)
		keyset_clear(ks);
	else
		keyset_sort(ks);
	return ret;
}

int dir_read(void *priv, const char *name, struct keyset *ks)
{
	int kfd, ret;

	kfd = open_keyset(priv, name);
	if (kfd < 0)
		return kfd;
	ret = dir_read_fd(kfd, name, ks);
	close(kfd);
	return ret;
}
