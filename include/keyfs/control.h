/* The control file: commands written to .control, and the plain-text
 * reports (status on reading .control, export/README.txt). */
#ifndef KEYFS_CONTROL_H
#define KEYFS_CONTROL_H

#include <stddef.h>

#include "keyfs/config.h"
#include "keyfs/import.h"
#include "keyfs/sealcache.h"
#include "keyfs/secret.h"
#include "keyfs/store.h"

#define CTL_COMMAND_MAX 4096

struct ctl {
	const struct config *cfg;
	struct vault *v;
	struct store *st;
	const struct state *state;	/* hints and marks (meta.h) */
	struct sealcache *sc;
	struct importer *im;
};

/* Every field of struct ctl must be set (sc may be NULL only where no
 * seal cache exists, as in tests).
 *
 * Run one command ("password <pw>", "unlock <pw>", "forget",
 * "hint [text]", "activate <keyset> <version>"), one per write; a single trailing newline is ignored.
 * buf holds a secret for some commands: the caller keeps it in guarded
 * memory and wipes it; it has room for len + 1 bytes (a NUL is put at
 * buf[len]). Refusals are -EINVAL with the reason logged. */
int ctl_command(struct ctl *c, char *buf, size_t len);

/* Reports as malloc()ed text with no secrets in them; *mtime is the
 * newest seal they describe (0 if none). */
int ctl_status(struct ctl *c, char **text, size_t *len, time_t *mtime);
int ctl_readme(struct ctl *c, char **text, size_t *len, time_t *mtime);

#endif
