/* The live layer's state, shared by store_live.c (the store operations,
 * restore, activation, recovery) and store_live_report.c (what status
 * and metrics show). */
#ifndef KEYFS_STORE_LIVE_PRIV_H
#define KEYFS_STORE_LIVE_PRIV_H

#include <pthread.h>

#include "keyfs/config.h"
#include "keyfs/hook.h"
#include "keyfs/keytree.h"
#include "keyfs/store.h"

#include "store_policy.h"

struct live {
	struct config_keyset cfg;
	struct keytree_select sel;
	struct store_policy pol;
	/* What its last read left out of the backup ("" nothing), and how
	 * many members; protected by the store's note_lock. */
	char left_out[KEYSET_PATH_MAX + 128];
	size_t nleft_out;
	struct hook_result hook;	/* protected by the store's lock */
	/* One on_activate of the keyset at a time; held while it runs,
	 * never with the store's lock, so a slow hook holds up neither
	 * restores of other keysets nor status reads. */
	pthread_mutex_t hook_lock;
};

struct live_store {
	struct store inner;
	int sfd;			/* keyfs' state directory (borrowed) */
	const struct config *cfg;	/* borrowed: every keyset's settings */
	struct live *live;
	size_t n;
	pthread_mutex_t lock;		/* held by restores, activations, hooks */
	pthread_mutex_t note_lock;	/* the live keysets' left_out */
};

/* s's live layer, or NULL for a store store_live_open() did not wrap. */
struct live_store *store_live_of(const struct store *s);
/* The restore rules of a keyset of either kind. */
struct store_policy store_live_policy(const struct live_store *ls, const char *name);

#endif
