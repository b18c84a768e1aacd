/* Live keysets: [keyset NAME] sections with a path, whose members are
 * the files below path that match include and not exclude, where the
 * services read them (config.h). A layer over the keystore's backend:
 * the seal cache and the FUSE layer see one store listing both kinds.
 *
 * Restores never destroy keys: a backup of a live keyset whose files are
 * all absent is installed at once; one that differs becomes an inactive
 * version in keyfs' state; activate installs a version in place
 * (install.h) and keeps the replaced files as a version. An install is
 * journalled in the state directory first, so one a crash interrupted
 * is finished at the next start, and temporaries a crash left are
 * removed then. After an install the keyset's on_activate runs (hook.h). */
#ifndef KEYFS_STORE_LIVE_H
#define KEYFS_STORE_LIVE_H

#include <stdbool.h>
#include <stddef.h>

#include "keyfs/config.h"
#include "keyfs/state.h"
#include "keyfs/store.h"

/* Wraps the open store s in the live keysets of cfg and in every
 * keyset's restore rules (store_policy.h), which reads apply. -EEXIST, logged, if a live keyset's name is also a keyset of
 * s: a configuration error. On error s is left as it was. */
int store_live_open(struct store *s, const struct config *cfg, const struct state *state);

/* Applies the restore rules of ks' keyset (store_policy.h) to ks, an
 * archive about to be verified or restored into s, so that what is
 * compared, fingerprinted and written is what a restore may set; the
 * recorded top directory is dropped for a keystore keyset. No-op
 * on a store store_live_open() did not wrap. cfg must outlive s. */
void store_live_apply(const struct store *s, struct keyset *ks);

/* Calls fn for each live keyset whose last on_activate failed or could
 * not start (until one succeeds); returns how many. */
size_t store_live_hooks_failed(const struct store *s, void (*fn)(void *arg, const char *keyset),
			       void *arg);

/* Is a version marked as restored from a backup nothing vouched for
 * (store_put_inactive(), versions.h; live and keystore keysets keep
 * versions in the same place)? fpr (size bytes) gets the fingerprint. */
bool store_live_unauthenticated(const struct store *s, const char *name, unsigned version,
				char *fpr, size_t size);
/* The mark goes once the version is active. */
void store_live_unmark(const struct store *s, const char *name, unsigned version);
/* Is name a live keyset ([keyset] with a path)? */
bool store_live_is_live(const struct store *s, const char *name);

/* The last on_activate of live keyset name in words ("exited 1 at
 * ...: its output"); -ENOENT for another keyset. */
int store_live_hook_words(const struct store *s, const char *name, char *buf, size_t size);

/* The on_activate results of the live keysets, one line each
 * ("on_activate ssh: exited 0 at ...: output"), then per live keyset
 * whose last read left something out by the restore rules, a line
 * naming the first member and how many more; for the status report. */
void store_live_status(const struct store *s, char *buf, size_t size);

#endif
