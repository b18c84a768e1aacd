/* Identities: the age secret keys (X25519 "AGE-SECRET-KEY-1..." and
 * OpenSSH Ed25519 keys) that import and verify open files with, beside
 * the vault's passwords (vault.h).
 *
 * Each identity's secret lives in its age_identity's guarded memory
 * (sodium_malloc, wiped on free); the keyring keeps, beside it, the
 * public recipient it opens (age_identity_recipient()), which is what
 * status shows and what tells two identities apart.
 *
 * Each identity records every origin that gave it. One given to keyfs
 * itself (.control, identity.file, identity.credential) outranks the
 * agent's, as passwords do: forgetting what came from the agent, or the
 * agent no longer answering with it, leaves an identity also given to
 * keyfs; an identity goes when no origin holds it any more.
 *
 * Locking: a rwlock. Readers (unsealing) hold the read lock for the time
 * they use the identities (keyring_read() .. keyring_read_end()); writers
 * wait for them, so no identity is freed under a running unseal. No
 * keyring function may be called inside a read section. */
#ifndef KEYFS_KEYRING_H
#define KEYFS_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "keyfs/age_keys.h"
#include "keyfs/age_recipient.h"

#define KEYRING_MAX 64	/* identities held at once */

enum keyring_origin {
	KEYRING_CONTROL,	/* the identity command of .control */
	KEYRING_FILE,		/* identity.file */
	KEYRING_CREDENTIAL,	/* identity.credential */
	KEYRING_AGENT,		/* keyfs-agent */
	KEYRING_ORIGINS,
};

struct keyring;

int keyring_new(struct keyring **kr);
/* Wipes every identity. NULL is a no-op. */
void keyring_free(struct keyring *kr);

/* Holds the identities of lists l[0..n) as given by o; an identity held
 * already (the same recipient) is kept once, now from o too. The lists'
 * identities are moved in or wiped, and the lists freed, whatever the
 * result. Returns 1 if anything changed (an identity or its origins), 0 if
 * not, -ENOSPC
 * (nothing changed) when they would exceed KEYRING_MAX, -ENOMEM. */
int keyring_add(struct keyring *kr, enum keyring_origin o, struct age_identity_list *l,
		size_t n);
/* The same, and o no longer gives what is not in l[0..n): the whole set
 * from o in one step (a file read again, the agent's answer). n may be 0. */
int keyring_replace(struct keyring *kr, enum keyring_origin o, struct age_identity_list *l,
		    size_t n);

/* Wipe every identity; or those from o alone (held from nowhere else). */
void keyring_forget(struct keyring *kr);
void keyring_forget_from(struct keyring *kr, enum keyring_origin o);

/* Read access: fills id[0..max) with the identities held and returns how
 * many. The copies point to the keyring's secrets, valid until
 * keyring_read_end(), which the caller must call whatever was returned;
 * the caller never clears them. */
size_t keyring_read(struct keyring *kr, struct age_identity *id, size_t max);
void keyring_read_end(struct keyring *kr);

size_t keyring_count(struct keyring *kr);

/* "control", "file", "credential", "agent". */
const char *keyring_origin_name(enum keyring_origin o);

/* The status block: "identities: N" and per identity the recipient it
 * opens and its origins. Never a secret. kr may be NULL (none held). */
void keyring_report(struct keyring *kr, FILE *f);

#endif
