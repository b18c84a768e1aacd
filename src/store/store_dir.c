/* The directory keystore, reading: <dir>/<keyset>/ holds the active
 * keys as a tree (keytree_read.c reads it, store_version.c writes it). Inactive versions and
 * temporaries sit in keyfs' state directory. */
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
#include "keyfs/keytree.h"
#include "keyfs/log.h"
#include "keyfs/replace.h"
#include "keyfs/store.h"

#include "store_dir.h"

struct name_list {
	char **names;
	size_t n;
};

/* The name listed for a directory whose escaped name is too long: an
 * escaped prefix, "%2F" and a hash of the whole name. A real directory
 * name never holds a '/', so the name cannot clash with one, and
 * sdir_real_name() knows it for what it is. */
static void long_name(const char *raw, char out[static KEYSET_NAME_MAX + 1])
{
	char prefix[14];
	uint8_t h[8];
	size_t i;

	snprintf(prefix, sizeof(prefix), "%s", raw);
	keyset_name_escape(prefix, out); /* 13 bytes escape to at most 39 */
	crypto_generichash(h, sizeof(h), (const uint8_t *)raw, strlen(raw), NULL, 0);
	strcat(out, "%2F");
	for (i = 0; i < sizeof(h); i++)
		sprintf(out + strlen(out), "%02x", h[i]);
}

/* Every directory is listed: under its escaped name, or, if that is too
 * long, under a long_name() whose stamp fails and whose why says so.
 * Hidden entries are keyfs' state (.keyfs) and temporaries. */
static int list_one(int dirfd, const char *name, mode_t type, void *arg)
{
	char esc[KEYSET_NAME_MAX + 1];
	struct name_list *l = arg;

	(void)dirfd;
	if (name[0] == '.' || !S_ISDIR(type))
		return 0;
	if (keyset_name_escape(name, esc))
		long_name(name, esc);
	return store_names_add(&l->names, &l->n, esc);
}

int sdir_real_name(const char *name, char raw[static NAME_MAX + 1])
{
	if (!keyset_name_valid(name) || keyset_name_unescape(name, raw, NAME_MAX + 1))
		return -ENOENT;
	return strchr(raw, '/') ? -ENAMETOOLONG : 0;
}

struct long_search {
	const char *name;
	char *why;
	size_t size;
};

static int why_long(int dirfd, const char *raw, mode_t type, void *arg)
{
	char esc[KEYSET_NAME_MAX + 1];
	struct long_search *ls = arg;

	(void)dirfd;
	if (raw[0] == '.' || !S_ISDIR(type) || !keyset_name_escape(raw, esc))
		return 0;
	long_name(raw, esc);
	if (strcmp(esc, ls->name))
		return 0;
	snprintf(ls->why, ls->size, "directory \"%s\": its name, escaped, is longer than %d "
		 "bytes (rename it to back it up)", raw, KEYSET_NAME_MAX);
	return 1;
}

int sdir_list(void *priv, char ***names, size_t *n)
{
	struct dir_store *d = priv;
	struct name_list l = { NULL, 0 };
	int ret;

	*names = NULL;
	*n = 0;
	ret = dirwalk_types(d->dfd, ".", list_one, &l);
	if (!ret) {
		store_names_sort(l.names, l.n);
		ret = store_list_pack((const char *const *)l.names, l.n, names);
		*n = ret ? 0 : l.n;
	}
	store_names_free(l.names, l.n);
	return ret;
}

static int open_keyset(struct dir_store *d, const char *name)
{
	char raw[NAME_MAX + 1];
	int fd;

	fd = sdir_real_name(name, raw);
	if (fd)
		return fd;
	fd = dirwalk_openat(d->dfd, raw, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int sdir_stamp(void *priv, const char *name, uint64_t *stamp)
{
	int kfd, ret;

	*stamp = 0;
	kfd = open_keyset(priv, name);
	if (kfd < 0)
		return kfd;
	ret = keytree_stamp(kfd, NULL, stamp, NULL, 0);
	close(kfd);
	return ret;
}

int sdir_why(void *priv, const char *name, char *why, size_t size)
{
	struct keyset ks = { 0 };
	uint64_t stamp;
	int kfd, ret;

	*why = '\0';
	kfd = open_keyset(priv, name);
	if (kfd == -ENAMETOOLONG) {
		struct long_search ls = { name, why, size };

		dirwalk_types(((struct dir_store *)priv)->dfd, ".", why_long, &ls);
	}
	if (kfd < 0)
		return kfd;
	ret = keytree_stamp(kfd, NULL, &stamp, why, size);
	/* What only reading finds (xattrs, a file changing all the time). */
	if (ret == 0)
		ret = keytree_read(kfd, name, &ks, why, size);
	keyset_clear(&ks);
	close(kfd);
	return ret;
}

int sdir_read_fd(int kfd, const char *name, struct keyset *ks)
{
	return keytree_read(kfd, name, ks, NULL, 0);
}

int sdir_read_stamped(void *priv, const char *name, struct keyset *ks, uint64_t *stamp)
{
	int kfd, ret;

	kfd = open_keyset(priv, name);
	if (kfd < 0)
		return kfd;
	ret = stamp ? keytree_read_stamped(kfd, name, ks, stamp) : sdir_read_fd(kfd, name, ks);
	close(kfd);
	return ret;
}

int sdir_read(void *priv, const char *name, struct keyset *ks)
{
	return sdir_read_stamped(priv, name, ks, NULL);
}
