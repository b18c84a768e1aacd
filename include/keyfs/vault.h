/* Passwords: the vault that holds them and the policy they must meet.
 *
 * The vault keeps every password in one sodium_malloc() pool (guarded,
 * mlocked, wiped on free): slot 0 is the backup password used for sealing,
 * the others are extra passwords tried when unsealing ("unlock").
 * Readers (sealing, unsealing) hold a read lock for the time they use a
 * password; set/forget wait for them, so a password is never wiped under
 * a running scrypt.
 *
 * Lock rule. The vault lock is a writer-preferring rwlock: once a writer
 * waits, new readers wait behind it. So a thread that waits for any vault
 * lock (every function here but vault_generation()) must hold no lock
 * that a thread inside a read section (vault_read*() .. vault_read_end())
 * may wait for: the reader waits for that lock, the writer for the
 * reader, and the caller for the writer. Sealing takes the seal cache's
 * locks inside read sections, so code holding those locks may call
 * vault_generation() alone. Likewise no vault function may be called
 * from inside a read section.
 *
 * Setters look first under the read lock and take the write lock only
 * when something would change: giving a password keyfs already holds
 * (vault_add_unlock() on every export open, with an agent) never waits
 * behind a running scrypt, nor makes readers wait.
 *
 * Each password records where it came from. A password given to keyfs
 * itself (.control, the password file, the credential) outranks one from
 * keyfs-agent: the agent's never replaces it, and forgetting what came
 * from the agent leaves it. */
#ifndef KEYFS_SECRET_H
#define KEYFS_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keyfs/age.h"
#include "keyfs/config.h"
#include "keyfs/keyset.h"

#define SECRET_PW_MAX 128	/* bytes */
#define VAULT_SLOTS 16		/* backup + unlock passwords */
#define VAULT_KEYSET_SLOTS 16	/* per-keyset backup passwords */
#define VAULT_PASS_MAX (VAULT_SLOTS + VAULT_KEYSET_SLOTS)

struct vault;

enum vault_origin {
	VAULT_GIVEN,	/* .control, password file, systemd credential */
	VAULT_AGENT,	/* keyfs-agent */
};

int vault_new(struct vault **v);
void vault_free(struct vault *v);

/* Replace the backup password (given). The same password again changes
 * nothing, the generation included. */
int vault_set(struct vault *v, const char *pw, size_t len);
/* Add an extra unseal password (given); -ENOSPC when every slot is taken. */
int vault_add_unlock(struct vault *v, const char *pw, size_t len);
/* Wipe every password. */
void vault_forget(struct vault *v);

/* The same, for a password from origin o. A password from the agent never
 * replaces a given one: that is no change. Returns 1 if the password held
 * changed, 0 if not (the same one again, or a given one kept), -EINVAL,
 * -ENOSPC. Giving again a password held from the agent makes it given. */
int vault_set_from(struct vault *v, enum vault_origin o, const char *pw, size_t len);
int vault_add_unlock_from(struct vault *v, enum vault_origin o, const char *pw, size_t len);
int vault_set_keyset_from(struct vault *v, enum vault_origin o, const char *keyset,
			  const char *pw, size_t len);
/* Wipe every password that came from o; the others stay. */
void vault_forget_from(struct vault *v, enum vault_origin o);
/* Wipe the backup password (keyset NULL) or the keyset's own password,
 * if it came from o. */
void vault_drop_from(struct vault *v, enum vault_origin o, const char *keyset);
/* Wipe the unlock passwords from o that are not among keep[0..n). */
void vault_keep_unlock_from(struct vault *v, enum vault_origin o, const struct age_pass *keep,
			    size_t n);

/* True if pw is the backup password held (constant time). */
bool vault_is_backup(struct vault *v, const char *pw, size_t len);

/* Counter bumped whenever a password that seals (the backup password or
 * a keyset's own) changes. Lock-free: safe under any lock. */
uint64_t vault_generation(struct vault *v);
bool vault_has_password(struct vault *v);
size_t vault_unlock_count(struct vault *v);

/* Read access. vault_read() fills pass[] with every password held (the
 * backup password first, when set) and returns how many; *gen receives the
 * generation. The pointers stay valid until vault_read_end(). */
size_t vault_read(struct vault *v, struct age_pass pass[static VAULT_SLOTS], uint64_t *gen);
/* Read access to the backup password alone: -ENOKEY (and no lock held)
 * when there is none. */
int vault_read_backup(struct vault *v, struct age_pass *pass, uint64_t *gen);
void vault_read_end(struct vault *v);

/* Per-keyset backup passwords: they override the backup password for
 * sealing that keyset (and are tried on import like every other).
 * vault_set_keyset() gives one (as vault_set_keyset_from(VAULT_GIVEN), 0
 * on success).
 * vault_read_for() gives the keyset's own password, else the backup
 * password, else -ENOKEY (no lock held then); release with
 * vault_read_end(). */
int vault_set_keyset(struct vault *v, const char *keyset, const char *pw, size_t len);
int vault_read_for(struct vault *v, const char *keyset, struct age_pass *pass, uint64_t *gen);
bool vault_has_for(struct vault *v, const char *keyset);
/* Names of the keysets with a password of their own. */
size_t vault_keysets(struct vault *v, char names[][KEYSET_NAME_MAX + 1], size_t max);
/* Like vault_read(), with the per-keyset passwords too. */
size_t vault_read_all(struct vault *v, struct age_pass *pass, size_t max, uint64_t *gen);

/* Wipe one keyset's own password (it is sealed under the backup password
 * again). */
void vault_forget_keyset(struct vault *v, const char *keyset);


#endif
