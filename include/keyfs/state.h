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
/* An empty file per keyset found not exportable (see sealknown.c). */
#define STATE_PROBLEMS "problems"
/* "PID MOUNTPOINT" of the keyfs that holds the state directory's lock. */
#define STATE_OWNER "owner"
/* How long a keyfs waits for another to let go of the directory. */
#define LOCK_WAIT_S 10

struct meta_cache;

struct state {
	int fd;			/* -1 when closed */
	char path[PATH_MAX];
	struct meta_cache *meta; /* meta.h's values in memory; NULL: read the files */
};

/* Creates path (0700) if absent, opens and checks it, takes its lock
 * (flock, held until state_close(): one keyfs per state directory, a
 * second waits LOCK_WAIT_S for the first to stop), and makes the
 * subdirectories. -ENOTDIR for a symlink or a non-directory, -EPERM for
 * one of another user or writable by others, -EBUSY (naming the pid and
 * mountpoint of the keyfs holding it) when the lock stays taken; each
 * logged. The lock lives in the open file: a fork keeps it. */
int state_open(struct state *s, const char *path);
/* Records this process and its mountpoint as the lock's holder, for the
 * message a second keyfs gives. */
int state_owner_write(struct state *s, const char *mountpoint);
void state_close(struct state *s);

/* STORE/.keyfs: the default state directory of a store at path. */
int state_default_path(const char *store, char *buf, size_t size);

#endif
