/* The control file: commands written to .control, and the plain-text
 * reports (status on reading .control, export/README.txt). The commands
 * themselves, and their syntax, are command.h's table. */
#ifndef KEYFS_CONTROL_H
#define KEYFS_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

#include "keyfs/command.h"
#include "keyfs/config.h"
#include "keyfs/fresh.h"
#include "keyfs/import.h"
#include "keyfs/keyring.h"
#include "keyfs/sealcache.h"
#include "keyfs/signkey.h"
#include "keyfs/vault.h"
#include "keyfs/store.h"

#define CTL_COMMAND_MAX COMMAND_MAX

/* Told what a command changed, after it changed it. Either hook may be
 * NULL (nobody to tell). */
struct ctl_observer {
	/* The passwords that seal changed: set, or forgotten. Runs in the
	 * writer's call; its error is the writer's error (the password is
	 * set all the same). */
	int (*secrets_changed)(void *arg);
	/* A hint changed: hints are sealed into exports, so they are stale. */
	void (*hints_changed)(void *arg);
	void *arg;
	/* "reload": read the password and identity sources again, as
	 * SIGHUP does; its error is the writer's. Last, so that initializers
	 * of the fields above stay valid; NULL refuses "reload" (ENOTSUP). */
	int (*reload)(void *arg);
};

struct ctl {
	const struct config *cfg;
	struct vault *v;
	struct store *st;
	const struct state *state;	/* hints and marks (meta.h) */
	struct sealcache *sc;	/* read by the reports only; NULL where none exists */
	struct fresh *fresh;	/* backup records, for the reports; NULL: none */
	struct importer *im;
	struct keyring *kr;	/* identities; NULL: "identity" is refused */
	struct signkey *sign;	/* the store's signing key; NULL: none (tests) */
	struct ctl_observer obs;
};

/* Every field of struct ctl must be set (sc and obs may be empty where no
 * seal cache exists, as in tests).
 *
 * Run one command (command.h: "password <pw>", "unlock <pw>", "forget",
 * "hint [text]", "activate <keyset> <version>", "identity <text>",
 * "reload"), one per write; a single
 * trailing newline is ignored. buf holds a secret for some commands: the
 * caller keeps it in guarded memory and wipes it; ctl_command() copies
 * no secret out of it but into the vault or the keyring. Refusals are -EINVAL with the
 * reason logged; other errors (the store's, the observer's) come back
 * unchanged. */
int ctl_command(struct ctl *c, char *buf, size_t len);

/* Reports as malloc()ed text with no secrets in them; *mtime is the
 * newest seal they describe (0 if none). */
int report_status(struct ctl *c, char **text, size_t *len, time_t *mtime);
int report_readme(struct ctl *c, char **text, size_t *len, time_t *mtime);
/* Every keyset, one line each, fields separated by tabs (escaped, "-"
 * for none) under a "# keyset\tstate..." heading: .keysets, for
 * keyfsctl list. A hundred thousand keysets make a 13 MiB text, so it is
 * made as it is read: the keysets listed at open, their lines when a
 * read reaches them. A read before the text held starts it again. */
struct list_reader;
int report_list_open(struct ctl *c, struct list_reader **out);
/* Up to size bytes of the text from off on: their number, 0 at the end,
 * or -ENOMEM. */
ssize_t report_list_read(struct list_reader *r, char *buf, size_t size, off_t off);
void report_list_close(struct list_reader *r);

/* The metrics (Prometheus text format, version 0.0.4) as malloc()ed text:
 * backup freshness, totals by state, locking, seal times, import
 * outcomes; per keyset unless metrics.per_keyset is no. *mtime is 0 (it
 * tells the present). -ENOTSUP without a seal cache or backup records. */
int report_metrics(struct ctl *c, char **text, size_t *len, time_t *mtime);

#endif
