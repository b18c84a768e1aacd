/* age recipient and identity types (C2SP age spec), as small vtables.
 *
 * A recipient wraps a file key into one stanza of its type and knows that
 * stanza's exact encoded size beforehand (st_size is exact before any
 * sealing). An identity tries to unwrap one stanza into the file key. The
 * table of registered types (src/age/age_recipient.c) says, per stanza type,
 * whether the stanza must be alone in a header and how to check its form
 * before any key work.
 *
 * Adding a type: one src/age_<type>.c defining its struct age_type, its
 * ops and constructors; its declarations at the end of this header; one
 * line in the table; the file in meson.build's core_src. The wrapped
 * stanza and the X25519 agreement the types share are in
 * src/age/age_wrap.h.
 */
#ifndef KEYFS_AGE_RECIPIENT_H
#define KEYFS_AGE_RECIPIENT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keyfs/age.h"
#include "keyfs/age_header.h"

/* What unwrap() returns besides 0 (file key set) and hard errors, which
 * stop the search: */
#define AGE_NOT_MINE (-ENOENT) /* another type's stanza */
#define AGE_WRONG_KEY (-EKEYREJECTED) /* this type's, but not this key's */

struct age_type {
	const char *name; /* the stanza type */
	/* The stanza must be the only one in a header: age's rule for
	 * scrypt, whose passphrase would otherwise give away the file key
	 * of a file meant for others too. */
	bool alone;
	/* The spec's checks of the arguments and body, before any key work:
	 * 0 or -EINVAL. Run on every stanza of this type of a file opened,
	 * whichever identities open it. */
	int (*check)(const struct age_stanza *s);
};

struct age_recipient;
struct age_recipient_ops {
	const struct age_type *type;
	/* age_stanza_size() of every stanza wrap() makes. */
	size_t (*stanza_size)(const struct age_recipient *r);
	/* Fills s; s->mem is the recipient's to allocate, the caller's to
	 * free with age_stanza_clear(). */
	int (*wrap)(const struct age_recipient *r,
		    const uint8_t file_key[static AGE_FILE_KEY_LEN],
		    struct age_stanza *s);
	void (*destroy)(void *priv);
};
struct age_recipient {
	const struct age_recipient_ops *ops;
	void *priv;
};

struct age_identity;
struct age_identity_ops {
	/* 0 with file_key set, AGE_NOT_MINE, AGE_WRONG_KEY, or an error. */
	int (*unwrap)(const struct age_identity *id, const struct age_stanza *s,
		      uint8_t file_key[static AGE_FILE_KEY_LEN]);
	void (*destroy)(void *priv);
	/* The public recipient this identity opens, as text (NULL for a
	 * type without one, scrypt): see age_identity_recipient(). */
	int (*recipient)(const struct age_identity *id, char *out,
			 size_t cap);
};
struct age_identity {
	const struct age_identity_ops *ops;
	void *priv;
};

/* Destroy what a constructor made; safe on a zeroed struct. */
void age_recipient_clear(struct age_recipient *r);
void age_identity_clear(struct age_identity *id);

/* The recipient an identity opens, as a NUL-terminated string to show
 * (status, logs): public, never the secret. "age1..." for X25519, and
 * "ssh-ed25519 SHA256:<fingerprint>" (as ssh-keygen -l prints it) for an
 * SSH key. -ENOTSUP for a type without a public recipient (scrypt),
 * -ENOSPC if cap bytes do not hold it. */
#define AGE_IDENTITY_RECIPIENT_MAX 80
int age_identity_recipient(const struct age_identity *id, char *out,
			   size_t cap);

/* The registered type of a stanza, or NULL for a type keyfs does not know
 * (such stanzas are left to identities, which say "not mine"). */
const struct age_type *age_type_find(const struct age_stanza *s);

/* A header's stanzas as the registered types allow: each checked by its
 * type, and an "alone" type alone. -EINVAL otherwise. */
int age_stanzas_check(const struct age_stanza *s, size_t n);

/* A list to seal to: not empty, and an "alone" type alone. */
int age_recipients_check(const struct age_recipient *r, size_t n);

/* The file key wrap all of age's native types share: ChaCha20-Poly1305
 * under a 32-byte key with a zero nonce. unwrap returns 0, AGE_WRONG_KEY,
 * or -EINVAL if the body is not a wrapped file key. */
#define AGE_WRAP_KEY_LEN 32
#define AGE_WRAPPED_LEN (AGE_FILE_KEY_LEN + AGE_TAG_LEN)
void age_wrap_file_key(uint8_t body[static AGE_WRAPPED_LEN],
		       const uint8_t file_key[static AGE_FILE_KEY_LEN],
		       const uint8_t key[static AGE_WRAP_KEY_LEN]);
int age_unwrap_file_key(uint8_t file_key[static AGE_FILE_KEY_LEN],
			const uint8_t *body, size_t len,
			const uint8_t key[static AGE_WRAP_KEY_LEN]);

/* ---- registered types, one src/age_<type>.c each ---- */

/* scrypt (src/age/age_scrypt.c): a passphrase. The recipient seals at work
 * factor logn (AGE_LOGN_MIN..AGE_LOGN_MAX); the identity refuses, as
 * AGE_WRONG_KEY and before any work, a stanza above max_logn (1..
 * AGE_LOGN_MAX). Both keep pass's pointer: the passphrase must outlive
 * them. -EINVAL for a bad argument, -ENOMEM. */
extern const struct age_type age_scrypt_type;
int age_scrypt_recipient(struct age_recipient *r, const struct age_pass *pass,
			 int logn);
int age_scrypt_identity(struct age_identity *id, const struct age_pass *pass,
			int max_logn);
/* age_stanza_size() of a scrypt stanza at work factor logn. */
size_t age_scrypt_stanza_size(int logn);
/* The work factor of a scrypt stanza, or -EINVAL. */
int age_scrypt_logn(const struct age_stanza *s);

/* X25519 (src/age_x25519.c): "age1..." recipients (lowercase Bech32 of
 * the public key) and "AGE-SECRET-KEY-1..." identities (uppercase Bech32
 * of the secret key, kept in guarded memory). -EINVAL for a string that
 * is not one, or a public key of low order (every file sealed to it would
 * carry an all-zero shared secret, which the spec forbids); -ENOMEM. */
#define AGE_X25519_KEY_LEN 32
#define AGE_X25519_RECIPIENT_LEN 62 /* "age1" and 58 characters */
#define AGE_X25519_IDENTITY_LEN 74 /* "AGE-SECRET-KEY-1" and 58 */
extern const struct age_type age_x25519_type;
int age_x25519_recipient(struct age_recipient *r, const char *s, size_t len);
int age_x25519_recipient_key(struct age_recipient *r,
			     const uint8_t pk[static AGE_X25519_KEY_LEN]);
int age_x25519_identity(struct age_identity *id, const char *s, size_t len);

/* ssh-ed25519 (src/age/age_ssh.c): an OpenSSH Ed25519 key, as age uses it:
 * "-> ssh-ed25519 <tag> <share>", the tag the first 4 bytes of SHA-256 of
 * the key's SSH wire encoding, the Ed25519 key converted to X25519 and
 * the shared secret tweaked by a scalar derived from the wire encoding.
 *
 * The recipient is made from an authorized_keys line, "ssh-ed25519
 * AAAA... [comment]"; *comment, if not NULL, gets the comment (without
 * the spaces before it, possibly empty), pointing into line. The identity
 * from an unencrypted "openssh-key-v1" private key file; its secret lives
 * in guarded memory. Errors: -EINVAL for a malformed line or file,
 * -EPROTONOSUPPORT for an SSH key of another type (ssh-rsa...),
 * AGE_SSH_ENCRYPTED (-ENOPKG) for a passphrase-protected private key,
 * -ENOMEM. */
#define AGE_SSH_ENCRYPTED (-ENOPKG)
#define AGE_SSH_ENCRYPTED_MSG                                               \
	"passphrase-protected OpenSSH keys are not supported: use an age " \
	"identity, encrypted with age -p, instead"
extern const struct age_type age_ssh_ed25519_type;
int age_ssh_recipient(struct age_recipient *r, const char *line, size_t len,
		      struct age_str *comment);
int age_ssh_identity(struct age_identity *id, const char *pem, size_t len);

#endif
