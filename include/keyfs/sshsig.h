/* SSH signatures (OpenSSH PROTOCOL.sshsig) with Ed25519 keys: what
 * `ssh-keygen -Y sign` writes and `ssh-keygen -Y verify` checks, so a
 * restorer can check who made a backup without keyfs. And the
 * allowed_signers file (ssh-keygen(1), ALLOWED SIGNERS) naming the keys
 * trusted to sign. Only ssh-ed25519 keys are supported. */
#ifndef KEYFS_SSHSIG_H
#define KEYFS_SSHSIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SSHSIG_NAMESPACE "keyfs"
#define SSHSIG_PK_LEN 32	/* crypto_sign_PUBLICKEYBYTES */
#define SSHSIG_SK_LEN 64	/* crypto_sign_SECRETKEYBYTES */
/* An armored signature of an Ed25519 key is under 400 bytes. */
#define SSHSIG_ARMOR_MAX 1024
#define SSHSIG_PRINCIPAL_MAX 255
/* "ssh-ed25519 " + base64 of the 51-byte public key blob. */
#define SSHSIG_PUBKEY_TEXT_MAX 96

/* Signs msg under namespace ns (hash sha512) with the Ed25519 key sk
 * (libsodium's 64-byte secret key; its public half is sk + 32), as
 * ssh-keygen -Y sign -n ns would: the armored text
 * "-----BEGIN SSH SIGNATURE-----\n" base64 in 70-column lines
 * "-----END SSH SIGNATURE-----\n" into out (size bytes, NUL-terminated).
 * Deterministic (Ed25519): the same key and message give the same bytes.
 * Returns the length, or -ENOSPC if out is too small. */
int sshsig_sign(const uint8_t sk[static SSHSIG_SK_LEN], const char *ns, const uint8_t *msg,
		size_t len, char *out, size_t size);

/* Checks an armored signature (sig, siglen bytes, as sshsig_sign() or
 * ssh-keygen wrote it; sha256 or sha512) of msg under namespace ns.
 * On success the signer's public key is in pk. -EINVAL for text that is
 * not such a signature (bad armor, base64, magic, version, lengths, a
 * key type other than ssh-ed25519), -EBADMSG for a signature that does
 * not verify or is for another namespace. */
int sshsig_verify(const char *sig, size_t siglen, const char *ns, const uint8_t *msg, size_t len,
		  uint8_t pk[static SSHSIG_PK_LEN]);

/* "ssh-ed25519 AAAA..." (the OpenSSH public key text) of pk into out. */
int sshsig_pubkey_text(const uint8_t pk[static SSHSIG_PK_LEN], char *out, size_t size);

/* One allowed_signers line for pk: "PRINCIPAL namespaces=\"keyfs\"
 * ssh-ed25519 AAAA...\n". Returns the length or -ENOSPC. */
int sshsig_allowed_line(const char *principal, const uint8_t pk[static SSHSIG_PK_LEN], char *out,
			size_t size);

/* Looks pk up in the text of an allowed_signers file: lines
 * "PRINCIPALS [OPTIONS] KEYTYPE BASE64 [COMMENT]", '#' comments and
 * blank lines skipped; PRINCIPALS a comma-separated list (patterns are
 * taken literally); OPTIONS a comma-separated list of which
 * namespaces="a,b" (quoted) restricts the line to those namespaces
 * (patterns with '*' and '?' as ssh-keygen matches them), cert-authority
 * makes the line never match (certificates are not supported),
 * valid-after/valid-before are honoured against now (YYYYMMDD[HHMM[SS]],
 * UTC with a Z suffix or local time otherwise), other options are
 * ignored. Lines with other key types are skipped. True if a line
 * for pk allows namespace ns; its first principal goes into principal
 * (size bytes, optional). Never fails on a bad line: it is skipped. */
bool sshsig_allowed(const char *text, size_t len, const uint8_t pk[static SSHSIG_PK_LEN],
		    const char *ns, long long now, char *principal, size_t size);

#endif
