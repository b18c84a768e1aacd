/* Import and verify: unseal a backup, check its keyset, and (import)
 * restore it into the keystore without ever destroying keys.
 *
 * A file is opened with every password the vault holds (a passphrase-
 * sealed file) and every identity of the keyring (a file sealed to
 * public keys: X25519 or ssh-ed25519), in one age_unseal_with().
 *
 * Outcomes, as negative errno (DESIGN.md section 3):
 *   -ENOKEY        nothing held at all: no password and no identity
 *   -EKEYREJECTED  nothing held opens it (a wrong password or identity),
 *                  or its scrypt work factor is above the limit (refused
 *                  before any scrypt)
 *   -EINVAL        not an age file, bad armor, bad or unsafe tar
 *   -EBADMSG       header MAC or payload authentication failed, truncated
 *   -EFBIG         larger than the import limit (reported by the stage)
 *   -EIO           the keystore write failed
 * Each is logged once, in words, and kept for the status report.
 *
 * import_file() may run for several files at once (the stage calls it
 * without its lock). Unsealing, the costly part (scrypt takes
 * 128 * 2^logN bytes per password tried), runs one file at a time in the
 * whole daemon, so parallel imports cannot multiply that memory. */
#ifndef KEYFS_IMPORT_H
#define KEYFS_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "keyfs/signkey.h"
#include "keyfs/state.h"
#include "keyfs/store.h"
#include "keyfs/vault.h"

#define IMPORT_HISTORY 16

struct importer;

struct keyring;

/* The work factor limit starts at AGE_LOGN_DEFAULT (the default of both
 * seal.work_factor and import.max_work_factor). */
int import_new(struct importer **im, struct store *st, const struct state *state,
	       struct vault *v);
void import_free(struct importer *im);

/* A password provider asked before a file is unsealed (keyfs-agent's,
 * registered by sources.c). */
void import_set_provider(struct importer *im, void (*ask)(void *arg, const char *keyset),
			 void *arg);

/* The identities to open files with, besides the vault's passwords
 * (keyring.h); none without this call. Call before the first
 * import_file(). */
void import_set_keyring(struct importer *im, struct keyring *kr);

/* A backup's KEYSET.sig (bundle.h) is checked against KEYSET.ini and
 * its members: a signature that does not verify, or a KEYSET.ini that
 * does not list the archive's members exactly, refuses the file
 * (-EBADMSG). One by k (this keyfs' own key) or by a key of the
 * allowed_signers file at signers (optional, "" none; import.signers)
 * names its signer in the outcome, and vouches for it. So does a
 * passphrase seal opened by one of keyfs' passwords. Any other backup
 * (sealed to recipients, unsigned or by an unknown key) is
 * unauthenticated: refused with -EKEYREJECTED when
 * refuse_unauthenticated (import.unauthenticated = refuse), else it
 * only becomes an inactive version, even of a keyset absent here or a
 * live keyset whose path holds nothing, and import_activate() installs
 * it only when told
 * unauthenticated. Call before the first import_file(); k and signers
 * outlive im. */
void import_set_signers(struct importer *im, const struct signkey *k, const char *signers,
			bool refuse_unauthenticated);

/* The highest scrypt work factor (logN, AGE_LOGN_MIN..AGE_LOGN_MAX) a file
 * may claim: config_import_max_work_factor(). Call before the first
 * import_file(). */
void import_set_max_work_factor(struct importer *im, int logn);

/* Process one complete staged file. data NULL means the file went past
 * the per-file limit of len bytes: that is logged and recorded, and the
 * result is -EFBIG (the stage's contract for its callback). */
int import_file(struct importer *im, bool verify_only, const uint8_t *data, size_t len);

/* activate <keyset> <version>, logged and recorded like an import. */
int import_activate(struct importer *im, const char *name, unsigned version, bool unauthenticated);

/* Outcomes counted since start, for the metrics. */
enum import_outcome {
	IMPORT_OK,		/* restored, unchanged, or a good copy */
	IMPORT_NO_PASSWORD,	/* -ENOKEY */
	IMPORT_REJECTED,	/* -EKEYREJECTED */
	IMPORT_INVALID,		/* -EINVAL */
	IMPORT_DAMAGED,		/* -EBADMSG */
	IMPORT_TOO_LARGE,	/* -EFBIG */
	IMPORT_STORE_ERROR,	/* -EIO, and anything else */
	IMPORT_FORGED,		/* -EBADMSG: KEYSET.sig or its members do not hold */
	IMPORT_UNAUTHENTICATED,	/* a good copy that nothing vouches for */
	IMPORT_OUTCOMES,
};

/* "ok", "no_password", ...: the metrics' outcome label. */
const char *import_outcome_name(enum import_outcome o);

/* counts[0] for import/, counts[1] for verify/. */
void import_counts(struct importer *im, uint64_t counts[2][IMPORT_OUTCOMES]);

/* Told (with no lock held) after each file imported or verified. */
void import_set_listener(struct importer *im, void (*fn)(void *arg), void *arg);

/* The last results, newest first, one line each. */
void import_report(struct importer *im, FILE *f);

#endif
