/* The keystore interface. The FUSE layer and the seal cache see keysets
 * only through these calls; a backend knows no crypto and no FUSE.
 * Every call returns 0 or a negative errno. */
#ifndef KEYFS_STORE_H
#define KEYFS_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "keyfs/keyset.h"

#define STORE_MEMBER_MAX (1 << 20)
/* Bounds of one keyset, so that a writer of a keyset directory cannot
 * make sealing or a stat exhaust the daemon. */
#define STORE_KEYSET_MAX (16 << 20)
#define STORE_ENTRIES_MAX 1024
#define STORE_META_MAX 4096

enum store_put_outcome {
	STORE_CREATED,		/* keyset was absent: restored and active */
	STORE_UNCHANGED,	/* identical to the active keys */
	STORE_KNOWN,		/* identical to stored inactive version */
	STORE_VERSIONED,	/* stored as a new inactive version */
};

struct store_put {
	enum store_put_outcome outcome;
	unsigned version;	/* for STORE_KNOWN and STORE_VERSIONED */
};

struct store_ops {
	/* Names of the keysets, sorted; free with store_names_free(). */
	int (*list)(void *priv, char ***names, size_t *n);
	/* A cheap version stamp of the active keyset (no file contents read):
	 * it changes whenever a member is added, removed, replaced or
	 * changed. -ENOENT if there is no such keyset. */
	int (*stamp)(void *priv, const char *name, uint64_t *stamp);
	/* Why stamp() or read() fails for a keyset, in words for the log and
	 * the status report (names escaped by the logger); returns the same
	 * error as stamp(). Called only when the failure is new. */
	int (*why)(void *priv, const char *name, char *buf, size_t size);
	/* The active keyset, members sorted. */
	int (*read)(void *priv, const char *name, struct keyset *ks);
	/* Small metadata values (hints, state) by key; -ENOENT if unset.
	 * An empty value removes the key. */
	int (*meta_get)(void *priv, const char *key, char *buf, size_t size);
	int (*meta_set)(void *priv, const char *key, const char *value);
	/* Restore a keyset without ever destroying one: absent -> created
	 * active; equal to the active one or a stored version -> nothing
	 * written; else a new inactive version. Atomic either way. */
	int (*put)(void *priv, const struct keyset *ks, struct store_put *res);
	/* Inactive version numbers of a keyset, ascending; free() *v. */
	int (*versions)(void *priv, const char *name, unsigned **v, size_t *n);
	/* Make a version active; the replaced keys are kept as version
	 * *kept (0 if there were none). */
	int (*activate)(void *priv, const char *name, unsigned version, unsigned *kept);
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
/* The state directory as an open descriptor (valid until store_close()),
 * checked to be the daemon's own; -1 for backends without one. */
int store_state_fd(const struct store *s);

void store_names_free(char **names, size_t n);

static inline void store_close(struct store *s)
{
	if (s->ops)
		s->ops->destroy(s->priv);
	s->ops = NULL;
}

#endif
