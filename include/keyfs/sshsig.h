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
/* Longer namespaces are refused (OpenSSH sets no limit; ours keeps every
 * signature within SSHSIG_ARMOR_MAX). */
#define SSHSIG_NAMESPACE_MAX 255
#define SSHSIG_PK_LEN 32	/* crypto_sign_PUBLICKEYBYTES */
#define SSHSIG_SK_LEN 64	/* crypto_sign_SECRETKEYBYTES */
/* An armored signature of an Ed25519 key is under 400 bytes with the
 * namespace "keyfs", and under 640 with the longest. */
#define SSHSIG_ARMOR_MAX 1024
#define SSHSIG_PRINCIPAL_MAX 255
/* "ssh-ed25519 " + base64 of the 51-byte public key blob. */
#define SSHSIG_PUBKEY_TEXT_MAX 96

/* Signs msg under namespace ns (hash sha512) with the Ed25519 key sk
 * (libsodium's 64-byte secret key; its public half is sk + 32), as
 * ssh-keygen -Y sign -n ns would: the armored text
 * "-----BEGIN SSH SIGNATURE-----\n" base64 in 70-column lines
 * "-----END SSH SIGNATURE-----\n" into out (size bytes, NUL-terminated).
 * Deterministic (Ed25519): the same key and message give the same bytes,
 * those of ssh-keygen for that key. Returns the length, -ENOSPC if out is
 * too small (SSHSIG_ARMOR_MAX always suffices), -EINVAL for an empty
 * namespace or one longer than SSHSIG_NAMESPACE_MAX. */
int sshsig_sign(const uint8_t sk[static SSHSIG_SK_LEN], const char *ns, const uint8_t *msg,
		size_t len, char *out, size_t size);

/* Checks an armored signature (sig, siglen bytes, as sshsig_sign() or
 * ssh-keygen wrote it; sha256 or sha512) of msg under namespace ns.
 * On success the signer's public key is in pk (untouched otherwise):
 * the caller still has to decide whether it trusts that key
 * (sshsig_allowed()). -EINVAL for text that is not such a signature
 * (bad armor, base64, magic, version other than 1, lengths, a key type
 * other than ssh-ed25519, another hash, an empty namespace), for text
 * longer than SSHSIG_ARMOR_MAX and for an ns that sshsig_sign() refuses;
 * -EBADMSG for a signature that does not verify or is for another
 * namespace. The armor is read as ssh-keygen reads it (BEGIN and its
 * newline at byte 0, base64 lines of any length, a CR before their
 * newlines allowed), but never more leniently: no white space inside
 * the base64 and only white space after END. */
int sshsig_verify(const char *sig, size_t siglen, const char *ns, const uint8_t *msg, size_t len,
		  uint8_t pk[static SSHSIG_PK_LEN]);

/* "ssh-ed25519 AAAA..." (the OpenSSH public key text, no comment) of pk
 * into out, NUL-terminated. Returns the length, or -ENOSPC if out is
 * too small (SSHSIG_PUBKEY_TEXT_MAX always suffices). */
int sshsig_pubkey_text(const uint8_t pk[static SSHSIG_PK_LEN], char *out, size_t size);

/* One allowed_signers line for pk: "PRINCIPAL namespaces=\"keyfs\"
 * ssh-ed25519 AAAA...\n", NUL-terminated. Returns the length, -ENOSPC,
 * or -EINVAL for a principal that would not read back as itself: empty,
 * longer than SSHSIG_PRINCIPAL_MAX, with a space, control character,
 * '"' or ',', or starting with '#' or '!'. */
int sshsig_allowed_line(const char *principal, const uint8_t pk[static SSHSIG_PK_LEN], char *out,
			size_t size);

/* Looks pk up in the text of an allowed_signers file and answers as
 * `ssh-keygen -Y verify -f FILE -I PRINCIPAL -n ns` would at time now for
 * a good signature by pk, PRINCIPAL being the line's first principal.
 * Lines "PRINCIPALS [OPTIONS] KEYTYPE BASE64 [COMMENT]"; '#' comments
 * and blank lines skipped. PRINCIPALS: a comma-separated pattern list,
 * or one quoted string; the first principal (taken literally) is the
 * line's name, and the line holds only if the list matches it (a
 * "!pattern" matching it excludes it). OPTIONS: comma-separated,
 * keywords in any case, values in double quotes (\" escapes a quote):
 * namespaces="a,b" restricts the line to those namespaces (patterns
 * with '*' and '?', "!" negating, as ssh-keygen matches them);
 * cert-authority makes the line never match (certificates are not
 * supported); valid-after="T" and valid-before="T" bound now (T is
 * YYYYMMDD[HHMM[SS]], UTC with a Z or UTC suffix, local time
 * otherwise, read as ssh-keygen reads it). Any other option, a repeated
 * one, an unreadable time or valid-before not after valid-after makes
 * the line bad, as it makes it for ssh-keygen. Lines with other key
 * types, bad lines and lines whose first principal is longer than
 * SSHSIG_PRINCIPAL_MAX or has a control character are skipped. True if
 * a line for pk allows namespace ns at now; the first such line's first
 * principal goes into principal (size bytes, NUL-terminated, cut if
 * size is under SSHSIG_PRINCIPAL_MAX + 1; principal may be NULL).
 * Never fails on a bad line: it is skipped. */
bool sshsig_allowed(const char *text, size_t len, const uint8_t pk[static SSHSIG_PK_LEN],
		    const char *ns, long long now, char *principal, size_t size);

#endif
