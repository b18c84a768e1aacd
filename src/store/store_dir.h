/* Internals shared by the directory backend's files. */
#ifndef KEYFS_STORE_DIR_PRIV_H
#define KEYFS_STORE_DIR_PRIV_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "keyfs/keyset.h"
#include "keyfs/state.h"

/* below the state directory (d->sfd) */
#define VERSIONS_DIR STATE_VERSIONS
#define TMP_DIR STATE_TMP

struct dir_walks;

struct dir_store {
	int dfd;		/* the store directory */
	int sfd;		/* keyfs' state directory (borrowed) */
	pthread_mutex_t write_lock; /* held by restores and activations */
	/* What the last clean stop found (store_dir_walks.c), until the
	 * store watcher's first pass is over (settled). */
	pthread_rwlock_t walks_lock;
	struct dir_walks *walks;
	bool walks_loaded;	/* walks is what the file holds */
	bool settled;
};

/* Reads the keyset in directory kfd (members sorted). */
int sdir_read_fd(int kfd, const char *name, struct keyset *ks);

/* The store directory's name of keyset name (escaped, keyset.h):
 * -ENOENT for an invalid name, -ENAMETOOLONG for the name standing for
 * a directory whose escaped name is too long. */
int sdir_real_name(const char *name, char raw[static NAME_MAX + 1]);

int sdir_list(void *priv, char ***names, size_t *n);
int sdir_stamp(void *priv, const char *name, uint64_t *stamp);
int sdir_why(void *priv, const char *name, char *why, size_t size);
int sdir_read(void *priv, const char *name, struct keyset *ks);
/* sdir_read(), and the stamp of the walk that read if stamp. */
int sdir_read_stamped(void *priv, const char *name, struct keyset *ks, uint64_t *stamp);
int sdir_put(void *priv, const struct keyset *ks, struct store_put *res);
int sdir_versions(void *priv, const char *name, unsigned **v, size_t *n);
int sdir_activate(void *priv, const char *name, unsigned version, unsigned *kept);
/* store_dir_walks.c: read at the first stamp, used until settled,
 * written at a clean stop if settled. sdir_walks_stamp(), the backend's
 * stamp: name's from its record while that holds, else sdir_stamp()'s
 * walk. */
void sdir_walks_init(struct dir_store *d);
int sdir_walks_stamp(void *priv, const char *name, uint64_t *stamp);
void sdir_walks_settled(void *priv);
void sdir_walks_save(struct dir_store *d);
void sdir_walks_close(struct dir_store *d);

/* Removes what a crash left in the temp directory. */
void sdir_clean_tmp(struct dir_store *d);

#endif
