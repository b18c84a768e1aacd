/* Internals shared by the directory backend's files. */
#ifndef KEYFS_STORE_DIR_PRIV_H
#define KEYFS_STORE_DIR_PRIV_H

#include <limits.h>
#include <pthread.h>

#include "keyfs/keyset.h"

#define STATE_DIR ".keyfs"
/* below the state directory (d->sfd) */
#define META_DIR "meta"
#define VERSIONS_DIR "versions"
#define TMP_DIR "tmp"

struct dir_store {
	int dfd;		/* the store directory */
	int sfd;		/* its state directory, checked at open */
	char state[PATH_MAX];	/* <dir>/.keyfs */
	pthread_mutex_t write_lock; /* held by restores and activations */
};

int dir_mkdirs(struct dir_store *d);
/* Reads the keyset in directory kfd (members sorted). */
int dir_read_fd(int kfd, const char *name, struct keyset *ks);

int dir_put(void *priv, const struct keyset *ks, struct store_put *res);
int dir_versions(void *priv, const char *name, unsigned **v, size_t *n);
int dir_activate(void *priv, const char *name, unsigned version, unsigned *kept);
/* Removes what a crash left in the temp directory. */
void dir_clean_tmp(struct dir_store *d);

#endif
