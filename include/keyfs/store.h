/* The keystore interface. The FUSE layer and the seal cache see keysets
 * only through these calls; a backend knows no crypto and no FUSE.
 * Every call returns 0 or a negative errno. */
#ifndef KEYFS_STORE_H
#define KEYFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "keyfs/keyset.h"
#include "keyfs/keytree.h"
#include "keyfs/state.h"

/* Bounds of one keyset (see keytree.h): a file, all files, entries. */
#define STORE_MEMBER_MAX KEYSET_FILE_MAX
#define STORE_KEYSET_MAX KEYSET_TOTAL_MAX
#define STORE_ENTRIES_MAX KEYSET_ENTRIES_MAX

enum store_put_outcome {
	STORE_CREATED,		/* keyset was absent: restored and active */
	STORE_UNCHANGED,	/* identical to the active keys */
	STORE_KNOWN,		/* identical to stored inactive version */
	STORE_VERSIONED,	/* stored as a new inactive version */
};

struct store_put {
	enum store_put_outcome outcome;
	unsigned version;	/* for STORE_KNOWN and STORE_VERSIONED */
	unsigned made;		/* directories made for it (a live keyset's missing path) */
	/* In, set by store_put_inactive(): an inactive version even where
	 * the put would install it (an absent keystore keyset, a live
	 * keyset whose path holds nothing). */
	bool inactive;
	/* In, from store_put_inactive(): the fingerprint the version is
	 * marked with (versions.h) before it can be listed, so that no kill
	 * leaves it activatable unasked. */
	const char *unauthenticated;
};

/* A backend: the required operations list, stamp, why and read; the
 * optional ones (NULL when a backend cannot) put, versions and activate.
 * The core answers for an absent one (store_put() and friends below). */
struct store_ops {
	/* Names of the keysets, sorted, as store_list_pack() makes them;
	 * free with store_list_free().
	 * Exception, live keysets (store_live.h): their names are fixed by
	 * the configuration, so each is listed, restored or not. */
	int (*list)(void *priv, char ***names, size_t *n);
	/* A cheap version stamp of the active keyset (no file contents read):
	 * it changes whenever a member is added, removed, replaced or
	 * changed. -ENOENT if there is no such keyset. Exception: a live
	 * keyset is never absent; with no files its stamp is an empty
	 * tree's, and read() fails with an error of the keyset. */
	int (*stamp)(void *priv, const char *name, uint64_t *stamp);
	/* Why stamp() or read() fails for a keyset, in words for the log and
	 * the status report (names escaped by the logger); returns the same
	 * error as stamp(). Called only when the failure is new. */
	int (*why)(void *priv, const char *name, char *buf, size_t size);
	/* The active keyset, members sorted. Exception, a store wrapped by
	 * store_live_open() (every daemon's): the restore rules apply
	 * (store_policy.c), so execute bits outside executable = and
	 * security.* xattrs a put wrote do not read back; callers apply
	 * store_live_apply() before they put or compare. */
	int (*read)(void *priv, const char *name, struct keyset *ks);
	/* Optional: read() and stamp() in one walk (store_read_stamped()).
	 * -EOPNOTSUPP: not for this keyset; the core stamps, then reads. */
	int (*read_stamped)(void *priv, const char *name, struct keyset *ks, uint64_t *stamp);
	/* Restore a keyset without ever destroying one: absent -> created
	 * active; equal to the active one or a stored version -> nothing
	 * written; else a new inactive version. Atomic either way.
	 * Exception, live keysets: "absent" is a path holding no files, so
	 * a put into one holding other files makes an inactive version;
	 * members include/exclude do not select are refused (-EINVAL). */
	int (*put)(void *priv, const struct keyset *ks, struct store_put *res);
	/* Inactive version numbers of a keyset, ascending; free() *v. */
	int (*versions)(void *priv, const char *name, unsigned **v, size_t *n);
	/* Make a version active; the replaced keys are kept as version
	 * *kept (0 if there were none). */
	int (*activate)(void *priv, const char *name, unsigned version, unsigned *kept);
	/* Optional: the directory whose subdirectories are the keysets
	 * (<dir>/<keyset>/, members below), for a change watcher
	 * (storewatch.h); the backend keeps it open. NULL: not such a tree. */
	int (*tree_fd)(void *priv);
	/* Optional: until batch(priv, false), this thread's calls may take
	 * every change made before batch(priv, true) for all there is to
	 * know. A listing or a status stamps every keyset: what a layer
	 * must ask the system before each answer from memory, it asks once
	 * (storewatch.h). */
	void (*batch)(void *priv, bool on);
	/* Optional: a first stamp of every keyset was asked for since the
	 * store was opened (the store watcher's first pass); what the
	 * backend kept to make those fast may go, and a clean stop may
	 * keep some for the next start. */
	void (*settled)(void *priv);
	void (*destroy)(void *priv);
};

struct store {
	const struct store_ops *ops;
	void *priv;
};

/* Opens a backend over path; state is keyfs' state directory for this
 * store (versions and temporaries of backends that keep them there),
 * valid until store_close(). */
typedef int store_open_fn(const char *path, const struct state *state, struct store *s);

/* The backends by name ("dir"); -ENOENT for an unknown one. The names
 * live in store_backends.c alone: the configuration keeps the name as
 * text, and keyfs checks it with store_backend_check() before it mounts. */
int store_open(const char *backend, const char *path, const struct state *state, struct store *s);
bool store_backend_known(const char *backend);
/* 0 if backend names a backend; else -ENOENT and *why says so, naming
 * the backends there are (static text, per thread). */
int store_backend_check(const char *backend, const char **why);

/* The directory backend: <dir>/<keyset>/ holds the active key files;
 * versions and temporaries live in the state directory, which must be on
 * the same filesystem (keys move there and back by rename). */
store_open_fn store_dir_open;

/* The keyset and a stamp never newer than what was read: what a seal
 * records, so that a change made while it read is sealed again. One
 * walk where the backend can; else stamp(), then read(). */
int store_read_stamped(struct store *s, const char *name, struct keyset *ks, uint64_t *stamp);

/* ops->batch, if the backend has one. */
void store_batch(struct store *s, bool on);

/* A list that grows: store_names_add() appends a copy of name;
 * store_names_free() frees each name and the list. */
int store_names_add(char ***names, size_t *n, const char *name);
void store_names_free(char **names, size_t n);
void store_names_sort(char **names, size_t n);
/* A list as list() answers: the n names of src copied, in their order,
 * into one block after their pointers, so that a hundred thousand names
 * take one allocation and one free(), not one each. */
int store_list_pack(const char *const *src, size_t n, char ***out);
void store_list_free(char **names);

/* The optional operations, answered by the core when absent: a backend
 * that cannot restore refuses with -EROFS, one without versions has
 * none, and cannot activate (-ENOENT: no such version). */
int store_put(struct store *s, const struct keyset *ks, struct store_put *res);
/* The same for a backup nothing vouched for (import.h): it is only ever
 * an inactive version, never installed, marked with its fingerprint fpr
 * (NULL: unmarked, an inactive version all the same). */
int store_put_inactive(struct store *s, const struct keyset *ks, const char *fpr,
		       struct store_put *res);
/* A layer's put passed on to the store it wraps, as it was asked. */
int store_put_on(struct store *s, const struct keyset *ks, struct store_put *res);
int store_versions(struct store *s, const char *name, unsigned **v, size_t *n);
int store_activate(struct store *s, const char *name, unsigned version, unsigned *kept);

static inline void store_close(struct store *s)
{
	if (s->ops)
		s->ops->destroy(s->priv);
	s->ops = NULL;
}

#endif
