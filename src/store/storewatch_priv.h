/* Internals shared by the store watcher's files: storewatch.c (the
 * store operations answered from memory), storewatch_node.c (the node
 * table), storewatch_stamp.c (a keyset's stamp, from memory or walked),
 * storewatch_watch.c (the inotify watches) and storewatch_thread.c (the
 * thread: the list, events and rescans).
 *
 * Locking: w->lock protects the node table, the name list and every
 * node field; the watch table (wd -> node) belongs to the thread alone. */
#ifndef KEYFS_STOREWATCH_PRIV_H
#define KEYFS_STOREWATCH_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "keyfs/htab.h"
#include "keyfs/keyset.h"
#include "keyfs/storewatch.h"

struct wnode;

/* One watched directory below a keyset's top; thread only. */
struct wdir {
	struct hnode h;		/* in w->wds; the hash is the watch descriptor */
	struct wnode *n;
	struct wdir *sib;	/* n's other directories */
	char rel[];		/* below the keyset's top */
};

/* One keyset of the list, a hundred thousand on a large store: its top
 * directory's watch within, the error and the flags (w->lock guards them
 * all) small, where the name begins: with a name of up to 8 bytes it
 * takes a 96-byte chunk of malloc's, not 112. */
struct wnode {
	struct hnode h;		/* in w->nodes */
	struct hnode top;	/* in w->tops, hash = the top's watch; 0: none;
				 * thread only */
	uint64_t base;		/* the inner store's stamp, last walked */
	uint64_t stamp;		/* what stamp() answers while valid */
	unsigned *versions;
	struct wdir *dirs;	/* below the top; thread only */
	uint32_t gen;		/* events seen for it (compared, never ordered) */
	uint32_t base_gen;	/* gen when base was walked */
	unsigned nversions;
	int16_t err;		/* ... or this error (a negative errno) */
	bool valid : 1;		/* answer without a walk */
	bool have_base : 1;
	bool watched : 1;	/* every directory of it is watched */
	bool pending : 1;	/* the listener is to be told */
	bool seen : 1;		/* still listed (during a relist) */
	bool vvalid : 1;	/* versions above are current */
	char name[];
};

struct storewatch {
	struct store inner;
	int root;			/* inner's tree_fd */
	dev_t dev;			/* root's device ... */
	bool counts_subdirs;		/* ... whose directories' link counts
					 * count their subdirectories */
	pthread_mutex_t lock;
	struct htab nodes;		/* struct wnode by name */
	const char **names;		/* sorted, when list_valid: the nodes' names */
	size_t n;
	bool list_valid;
	uint64_t puts;			/* new keysets put through the watcher */
	bool polling;			/* rescans, not events, keep the cache */
	struct htab tops;		/* struct wnode by its top's wd; thread only */
	struct htab wds;		/* struct wdir by wd; thread only */
	int ifd;			/* inotify; -1: none */
	/* Events the kernel queued, or the thread read and has not applied
	 * yet, are changes the node table does not show: while any wait,
	 * stamps are walked, not answered from memory (events_pending()). */
	int qfd;			/* ifd, to ask; -1: none; protected by lock */
	bool reading;			/* events read, not all applied; protected by lock */
	bool relist_due;		/* a store directory event applied, the list not
					 * read again yet; protected by lock */
	int root_wd;
	bool here;			/* the thread's working directory is root */
	/* The keyset some caller walked last, how many it walked, while
	 * stamped is false: the first pass goes on past it. Protected by
	 * lock. */
	char walked[KEYSET_NAME_MAX + 1];
	uint64_t nwalked;
	bool stamped;
	int efd;			/* eventfd: stop the thread */
	pthread_t thread;
	bool running;
	void (*fn)(void *arg, const char *keyset);
	void *arg;
	void (*ready_fn)(void *arg);
	void *ready_arg;
};

/* ---- storewatch_node.c; caller holds w->lock ---- */
struct wnode *sw_wnode_find(struct storewatch *w, const char *name);
struct wnode *sw_wnode_add(struct storewatch *w, const char *name);
void sw_wnode_free(struct wnode *n);
/* Marks n changed by an event: walked again on the next stamp(). */
void sw_wnode_touch(struct wnode *n);

/* ---- storewatch_stamp.c ---- */
/* Whether memory may answer now: no change waits that the node table
 * does not show yet. Caller holds w->lock. */
bool sw_answer_now(struct storewatch *w);
/* Begins (on) or ends this thread's batch (store_ops.batch). Without
 * the lock. */
void sw_wnode_batch(struct storewatch *w, bool on);
/* name's stamp: from memory while its node is valid, else walked (and
 * kept if it was watched and no event came meanwhile). With ks, the
 * keyset is read too, in the walk or after the stamp from memory
 * (store_read_stamped()). Without the lock. */
int sw_wnode_stamp(struct storewatch *w, const char *name, struct keyset *ks, uint64_t *stamp);
/* The first pass over the keysets fresh: watched, then stamped, ahead
 * of a listing made meanwhile; the thread only. */
void sw_stamp_fresh(struct storewatch *w, struct wnode *const *fresh, size_t nf);

/* ---- storewatch_watch.c; the thread only ---- */
/* The keyset directory watched as wd, and the keyset whose top is. */
struct wdir *sw_wdir_find(struct storewatch *w, int wd);
struct wnode *sw_top_find(struct storewatch *w, int wd);
/* Forget a watch the kernel dropped (IN_IGNORED). */
void sw_wdir_drop(struct storewatch *w, struct wdir *d);
void sw_top_drop(struct storewatch *w, struct wnode *n);
/* Watches keyset n's directory rel (its top if ""), and what is below. */
void sw_watch_keyset(struct storewatch *w, struct wnode *n, const char *rel);
/* Drops every watch of keyset n: its directory is gone, or another one
 * has its name now. Walked until watched again. */
void sw_unwatch_keyset(struct storewatch *w, struct wnode *n);
/* inotify on the store directory (w->ifd, w->root_wd), or polling. */
void sw_watch_root(struct storewatch *w);
void sw_unwatch_all(struct storewatch *w);

/* ---- storewatch_thread.c ---- */
void *storewatch_main(void *arg);

#endif
