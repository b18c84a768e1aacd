/* keyfs' own state directory, apart from the keys: the seal cache, the
 * password verifiers, metadata (hints, marks), inactive versions,
 * backup records (fresh.h) and temporaries. One per mounted store; STORE/.keyfs for the directory
 * store unless state.dir names another.
 *
 * It is reached only through one descriptor, opened without following a
 * link and checked to be a directory of the daemon's user that nobody
 * else may write: a writer of the store could otherwise point .keyfs at
 * another directory and have keyfs write, and at start delete, there. */
#ifndef KEYFS_STATE_H
#define KEYFS_STATE_H

#include <limits.h>

/* Subdirectories, relative to the state directory. */
#define STATE_META "meta"
#define STATE_VERSIONS "versions"
#define STATE_TMP "tmp"
#define STATE_CACHE "cache"
#define STATE_FRESH "fresh"

struct meta_cache;

struct state {
	int fd;			/* -1 when closed */
	char path[PATH_MAX];
	struct meta_cache *meta; /* meta.h's values in memory; NULL: read the files */
};

/* Creates path (0700) if absent, opens and checks it, and makes the
 * subdirectories. -ENOTDIR for a symlink or a non-directory, -EPERM for
 * one of another user or writable by others (each logged). */
int state_open(struct state *s, const char *path);
void state_close(struct state *s);

/* STORE/.keyfs: the default state directory of a store at path. */
int state_default_path(const char *store, char *buf, size_t size);

#endif
