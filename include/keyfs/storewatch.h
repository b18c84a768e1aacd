/* The store watcher: a layer over a keystore whose keysets are the
 * subdirectories of one directory (store_ops.tree_fd), which answers the
 * keyset list and each keyset's version stamp from memory, and learns of
 * changes from the kernel instead of walking keysets on every lookup.
 *
 * inotify watches the store directory and every directory of every
 * keyset (keysets are trees); an event marks its keyset changed, so even
 * a rewrite that keeps size and times within one timestamp tick gives a
 * new stamp (the content's fingerprint is folded in when the walk alone
 * sees nothing new). Where the kernel sends no events (NFS, CIFS, FUSE,
 * no watches left) or its queue overflowed, a rescan compares every
 * keyset's stamp instead, periodically. Each keyset that changed,
 * appeared or went away is told to a listener, from the watcher's own
 * thread, within about a second of the change (a rescan's period where
 * there are no events). */
#ifndef KEYFS_STOREWATCH_H
#define KEYFS_STOREWATCH_H

#include "keyfs/store.h"

struct storewatch;

/* Puts the watcher over *s, which then answers through it (store_close()
 * frees both). *w is NULL and s untouched if the backend is no tree of
 * directories: nothing to watch. */
int storewatch_wrap(struct store *s, struct storewatch **w);

/* fn(arg, keyset) is called, without locks held, for each keyset whose
 * stamp or existence changed. Set before storewatch_start(). */
void storewatch_set_listener(struct storewatch *w, void (*fn)(void *arg, const char *keyset),
			     void *arg);

/* fn(arg) is called once, from the watcher's thread, when its first list
 * of the store is watched and every keyset on it stamped: from then on
 * stamps are answered from memory, but for keysets changed since. Set
 * before storewatch_start(). */
void storewatch_set_ready(struct storewatch *w, void (*fn)(void *arg), void *arg);

/* Starts the watcher's thread (after any fork): it lists the store and
 * adds the watches in the background; until a keyset is watched, its
 * stamp is walked on each call, as without the watcher. */
int storewatch_start(struct storewatch *w);

/* Joins the thread; after it the listener is never called. */
void storewatch_stop(struct storewatch *w);

#endif
