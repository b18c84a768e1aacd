/* age key files, parsed from buffers (the caller reads the file, so the
 * parsers are fuzzable):
 *
 * - a recipients file, in `age -R` format: one recipient a line, "age1..."
 *   (X25519) or "ssh-ed25519 AAAA... comment"; lines starting with "#"
 *   and empty lines skipped; CRLF allowed;
 * - an identity file: "AGE-SECRET-KEY-1..." lines with "#" comments and
 *   empty lines (as age-keygen writes, several allowed), or an unencrypted
 *   OpenSSH Ed25519 private key.
 *
 * What keyfs does not support is refused with a reason, never skipped:
 * ssh-rsa and other SSH key types, post-quantum "age1pq1..." recipients
 * and "AGE-SECRET-KEY-PQ-1..." identities, plugins ("age1name1...",
 * "AGE-PLUGIN-..."), passphrase-protected OpenSSH keys.
 *
 * On an error, why (whylen bytes, may be 0) gets "line N: reason", which
 * the caller prints after the file name as "FILE:N: reason". A reason
 * never quotes a key's text. Errors, as negative errno:
 *   -EINVAL           a malformed or unsupported line, or no key at all
 *   AGE_SSH_ENCRYPTED a passphrase-protected OpenSSH key (age_recipient.h)
 *   -ENOMEM
 * Callers must have called sodium_init().
 */
#ifndef KEYFS_AGE_KEYS_H
#define KEYFS_AGE_KEYS_H

#include <stddef.h>

#include "keyfs/age_recipient.h"

/* The recipients of a file, in its order, and for each a string to show
 * (in status, a README): the "age1..." string itself, or the SSH key's
 * comment ("ssh-ed25519 key" when it has none); and its key as one
 * string, the same however the line was spaced or commented:
 * "age1..." or "ssh-ed25519 AAAA...". */
struct age_recipient_list {
	struct age_recipient *r; /* n of them: age_seal_to(.., l.r, l.n, ..) */
	char **display; /* n NUL-terminated strings */
	char **key; /* n NUL-terminated strings */
	size_t n;
};

struct age_identity_list {
	struct age_identity *id; /* age_unseal_with(.., l.id, l.n, ..) */
	size_t n;
};

/* Parses a recipients file: at least one recipient. On failure l is left
 * empty. Release with age_recipient_list_free(). */
int age_keys_recipients(struct age_recipient_list *l, const char *text,
			size_t len, char *why, size_t whylen);
void age_recipient_list_free(struct age_recipient_list *l);

/* Parses an identity file: at least one identity. On failure l is left
 * empty. Release with age_identity_list_free(), which wipes the keys. */
int age_keys_identities(struct age_identity_list *l, const char *text,
			size_t len, char *why, size_t whylen);
void age_identity_list_free(struct age_identity_list *l);

#endif
