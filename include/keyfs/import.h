/* Import and verify: unseal a backup, check its keyset, and (import)
 * restore it into the keystore without ever destroying keys.
 *
 * Outcomes, as negative errno (DESIGN.md section 3):
 *   -ENOKEY        no password available at all
 *   -EKEYREJECTED  no available password opens it, or logN above the cap
 *   -EINVAL        not an age file, bad armor, bad or unsafe tar
 *   -EBADMSG       header MAC or payload authentication failed, truncated
 *   -EIO           the keystore write failed
 * Each is logged once, in words, and kept for the status report. */
#ifndef KEYFS_IMPORT_H
#define KEYFS_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "keyfs/secret.h"
#include "keyfs/store.h"

#define IMPORT_HISTORY 16

struct importer;

int import_new(struct importer **im, struct store *st, struct vault *v);
void import_free(struct importer *im);

/* Process one complete staged file. */
int import_file(struct importer *im, bool verify_only, const uint8_t *data, size_t len);

/* activate <keyset> <version>, logged and recorded like an import. */
int import_activate(struct importer *im, const char *name, unsigned version);

/* The last results, newest first, one line each. */
void import_report(struct importer *im, FILE *f);

#endif
