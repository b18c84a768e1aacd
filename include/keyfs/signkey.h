/* The store's signing key: an Ed25519 key keyfs makes in its state
 * directory at first start and signs every export's KEYSET.ini with
 * (bundle.h), so a restore can prove which keyfs made a backup, and
 * `ssh-keygen -Y verify` can too (sshsig.h). Its public half, as an
 * allowed_signers line, belongs off the server with the recipients
 * list. A rebuilt server makes a new one; the old line keeps verifying
 * the old backups. */
#ifndef KEYFS_SIGNKEY_H
#define KEYFS_SIGNKEY_H

#include <stddef.h>
#include <stdint.h>

#include "keyfs/sshsig.h"

/* STATE/signing.key: the 32-byte Ed25519 seed, 0600. */
#define SIGNKEY_FILE "signing.key"

struct signkey;

/* Loads the key from the state directory sfd, making it first if there
 * is none; the secret lives in guarded memory, read-only.
 * -EINVAL for a file of the wrong size or one others may read. */
int signkey_open(int sfd, struct signkey **out);
void signkey_free(struct signkey *k);

void signkey_public(const struct signkey *k, uint8_t pk[static SSHSIG_PK_LEN]);
/* The principal it signs as: "keyfs@HOSTNAME". */
const char *signkey_principal(const struct signkey *k);
/* Its allowed_signers line (sshsig_allowed_line()). */
int signkey_allowed_line(const struct signkey *k, char *out, size_t size);
/* A bundle_signer's sign: arg is the struct signkey. */
int signkey_sign(void *arg, const uint8_t *msg, size_t len, char *sig, size_t size);

#endif
