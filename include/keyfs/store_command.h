/* Command keysets: [keyset NAME] sections with a backup_command, for keys
 * only a program reaches (a LUKS header, a GnuPG keyring, a KDC's
 * database). A layer over the keystore's backend, below the live layer.
 *
 * keyfs runs backup_command at start, every refresh seconds and on
 * "refresh NAME"; the members it yields are kept in keyfs' state
 * directory (commands/NAME/), replaced only when their bytes change, so
 * unchanged output keeps the export's bytes. A run that fails, times
 * out or writes nothing makes the keyset a problem (no export, status,
 * the log) until one succeeds: the last good content is not served as
 * if current.
 *
 * An import never runs restore_command: it runs backup_command (the keys
 * may be lost since the last run), and a backup differing from what
 * that gives becomes an inactive version, and activate runs restore_command over its members;
 * its exit status is the activation's. The keys it replaced (the last
 * run's members) are kept as a version, and backup_command runs again
 * so that export/ shows what the program holds now. */
#ifndef KEYFS_STORE_COMMAND_H
#define KEYFS_STORE_COMMAND_H

#include <stdbool.h>
#include <stddef.h>

#include "keyfs/config.h"
#include "keyfs/state.h"
#include "keyfs/store.h"

struct command_store;

/* Wraps s in cfg's command keysets; *cs NULL (s untouched) when there
 * are none. -EEXIST, logged, if a command keyset's name is also one of
 * s's; -EINVAL, logged, for a user this host lacks or a bad env. No
 * program runs before store_command_start(). cfg must outlive s. */
int store_command_wrap(struct store *s, const struct config *cfg, const struct state *state,
		       struct command_store **cs);

/* Starts the thread that runs each backup_command at once and then
 * every refresh seconds; changed(arg, name) is called (from that
 * thread, or the one refreshing) whenever a keyset's members or its
 * trouble changed. cs may be NULL (no command keysets): nothing to do. */
int store_command_start(struct command_store *cs, void (*changed)(void *arg, const char *name),
			void *arg);
/* Stops it (waiting for a run under way): changed is not called after
 * this returns. store_close() stops it too. */
void store_command_stop(struct command_store *cs);

/* Runs name's backup_command now and waits for it: 0, -ENOENT if name
 * is no command keyset, or the run's error (why it failed is logged and
 * in the status). */
int store_command_refresh(const struct store *s, const char *name);

/* Is name a command keyset of s (or of the store s wraps)? */
bool store_command_is(const struct store *s, const char *name);

/* How name's last restore_command ended, in words; -ENOENT if never. */
int store_command_restore_words(const struct store *s, const char *name, char *buf,
				size_t size);

/* One line per command keyset: "backup_command NAME: exited 0 at ...",
 * with the tail of its stderr when it failed; for the status report. */
void store_command_status(const struct store *s, char *buf, size_t size);

/* Calls fn for each command keyset whose last backup_command failed;
 * returns how many. */
size_t store_command_failed(const struct store *s, void (*fn)(void *arg, const char *keyset),
			    void *arg);

#endif
