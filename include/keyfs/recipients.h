/* The public keys exports are sealed to: seal.recipients and the
 * recipients of [keyset NAME] sections, each file in `age -R` format
 * (age_keys.h), read into one immutable snapshot.
 *
 * A snapshot is shared by reference: the seal cache holds the current one
 * and each seal holds the one it seals with, so a reload (SIGHUP,
 * .control reload) swaps in a new snapshot while seals under the old one
 * finish. Nothing in a snapshot changes after recipients_load().
 *
 * A file is refused unless it is a regular file that only its owner may
 * write, owned by keyfs' user or root: whoever can write it chooses who
 * can open every backup. */
#ifndef KEYFS_RECIPIENTS_H
#define KEYFS_RECIPIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keyfs/age_keys.h"
#include "keyfs/config.h"
#include "keyfs/verifier.h"

#define RECIPIENTS_FILE_MAX (64 * 1024)

/* The recipients of one file. */
struct recipset {
	char *file;
	struct age_recipient_list l;
	uint8_t id[VERIFIER_ID_LEN];	/* sealkey_recipients_id() of l.key */
};

struct recipients;

/* Reads every recipients file the configuration names. *r is NULL when
 * it names none. On failure, err says "FILE:LINE: why" or "FILE: why". */
int recipients_load(const struct config *c, struct recipients **r, char *err, size_t errlen);

struct recipients *recipients_ref(struct recipients *r);
/* Drops a reference; the last frees the snapshot. NULL is fine. */
void recipients_put(struct recipients *r);

/* The files of r, in the order the configuration names them: i from 0
 * to recipients_count() - 1. */
size_t recipients_count(const struct recipients *r);
const struct recipset *recipients_at(const struct recipients *r, size_t i);

/* The recipients of keyset: its own, else seal.recipients (NULL: none).
 * *own, if not NULL, tells which. */
const struct recipset *recipients_for(const struct recipients *r, const char *keyset, bool *own);

#endif
