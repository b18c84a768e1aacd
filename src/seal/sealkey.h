/* Sealing key ids: what seals each keyset, named by a stable id in the
 * seal cache so that a cached seal is known to be current without any
 * crypto per keyset. Today a sealing key is a passphrase, the keyset's
 * own or else the backup password; its id comes from a verifier beside
 * the cache (one scrypt with its own salt: verifier.h), so a restart with
 * the same password revalidates every cached seal with one scrypt. */
#ifndef KEYFS_SEALKEY_H
#define KEYFS_SEALKEY_H

#include <stdbool.h>
#include <stdint.h>

#include "keyfs/keyset.h"
#include "keyfs/vault.h"
#include "keyfs/verifier.h"

struct sealkey_ids {
	bool have_backup;			/* the backup password is set */
	uint8_t backup[VERIFIER_ID_LEN];
	struct {
		char name[KEYSET_NAME_MAX + 1];
		uint8_t id[VERIFIER_ID_LEN];
	} own[VAULT_KEYSET_SLOTS];		/* keysets' own passwords */
	size_t nown;
	uint64_t gen;				/* vault generation they are for */
};

/* The ids of every password the vault holds for sealing, from the
 * verifiers in the state directory sfd (made or replaced as needed, at
 * work factor logn). ids->gen is 0 when the vault changed meanwhile (the
 * ids may then be stale: ask again). */
int sealkey_find(int sfd, struct vault *v, int logn, struct sealkey_ids *ids);

/* The id of what seals keyset: its own password's, else (unless it must
 * have its own, own_pw) the backup password's; NULL if that is not given. */
const uint8_t *sealkey_id(const struct sealkey_ids *ids, const char *keyset, bool own_pw);

/* The id of a list of public recipients (age1..., ssh-ed25519 lines): a
 * hash of their strings in sorted order, so the same recipients in any
 * order keep every seal, and any change reseals exactly the keysets the
 * list covers. No verifier is needed: recipients are public. */
int sealkey_recipients_id(const char *const *recipients, size_t n,
			  uint8_t id[static VERIFIER_ID_LEN]);

/* Whether keyset has a password of its own among the ids. */
bool sealkey_has_own(const struct sealkey_ids *ids, const char *keyset);

#endif
