/* The keystore interface. The FUSE layer and the seal cache see keysets
 * only through these calls; a backend knows no crypto and no FUSE.
 * Every call returns 0 or a negative errno. */
#ifndef KEYFS_STORE_H
#define KEYFS_STORE_H

#include <stdint.h>
#include <time.h>

#include "keyfs/keyset.h"

#define STORE_MEMBER_MAX (1 << 20)
#define STORE_META_MAX 4096

struct store_ops {
	/* Names of the keysets, sorted; free with store_names_free(). */
	int (*list)(void *priv, char ***names, size_t *n);
	/* A cheap version stamp of the active keyset (no file contents read):
	 * it changes whenever a member is added, removed, replaced or
	 * changed. -ENOENT if there is no such keyset. */
	int (*stamp)(void *priv, const char *name, uint64_t *stamp);
	/* The active keyset, members sorted. */
	int (*read)(void *priv, const char *name, struct keyset *ks);
	/* Small metadata values (hints, state) by key; -ENOENT if unset.
	 * An empty value removes the key. */
	int (*meta_get)(void *priv, const char *key, char *buf, size_t size);
	int (*meta_set)(void *priv, const char *key, const char *value);
	void (*destroy)(void *priv);
};

struct store {
	const struct store_ops *ops;
	void *priv;
};

/* The directory backend: <dir>/<keyset>/ holds the active key files,
 * <dir>/.keyfs/ is keyfs' own (metadata, versions, cache). */
int store_dir_open(const char *dir, struct store *s);

/* Path of the backend's private state directory, for the seal cache;
 * created on first use. NULL for backends without one. */
const char *store_dir_state(const struct store *s);

void store_names_free(char **names, size_t n);

static inline void store_close(struct store *s)
{
	if (s->ops)
		s->ops->destroy(s->priv);
	s->ops = NULL;
}

#endif
