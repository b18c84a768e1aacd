/* What the recipient types of src/age/ share beyond the file key wrap
 * itself (age_wrap_file_key() in keyfs/age_recipient.h): the wrapped
 * stanza every type writes, and the X25519 key agreement that X25519 and
 * ssh-ed25519 both use. Each type keeps in its own file what is its own:
 * its arguments, its checks, its wrap key's inputs.
 *
 * Returns are 0 or a negative errno, as in keyfs/age_recipient.h. */
#ifndef KEYFS_AGE_WRAP_H
#define KEYFS_AGE_WRAP_H

#include <stddef.h>
#include <stdint.h>

#include "keyfs/age_recipient.h"

/* age_stanza_size() of the stanza age_stanza_wrap() makes from a type
 * and nargs arguments of the lengths in arglen. */
size_t age_stanza_wrapped_size(const char *type, const size_t *arglen,
			       size_t nargs);

/* Fills s with a stanza of type (a string that outlives s: kept by
 * pointer), copies of the nargs arguments in args, and for body file_key
 * wrapped under key. s->mem holds the copies and the body, for
 * age_stanza_clear(). -EINVAL for more than AGE_STANZA_ARGS_MAX
 * arguments, -ENOMEM; s is left alone on error. */
int age_stanza_wrap(struct age_stanza *s, const char *type,
		    const struct age_str *args, size_t nargs,
		    const uint8_t file_key[static AGE_FILE_KEY_LEN],
		    const uint8_t key[static AGE_WRAP_KEY_LEN]);

/* The X25519 agreement of a type, whose wrap key is
 *   dh     = X25519(scalar, point)
 *   shared = X25519(tweak, dh), or dh itself without a tweak
 *   key    = HKDF-SHA-256(ikm = shared, salt = share || pk, info = label)
 * (scalar, point) being (ephemeral, pk) to wrap and (identity secret,
 * share) to unwrap. An all-zero dh or shared is refused with -EINVAL. */
struct age_dh {
	const char *label; /* HKDF info, NUL-terminated */
	const uint8_t *pk; /* the recipient's X25519 public key */
	const uint8_t *tweak; /* NULL, or a scalar of AGE_X25519_KEY_LEN */
};

/* Wraps file_key to dh->pk under a fresh ephemeral key, into a stanza of
 * type whose arguments are the npre of pre, then the base64 of the
 * ephemeral share. */
int age_dh_wrap(struct age_stanza *s, const char *type,
		const struct age_str *pre, size_t npre,
		const uint8_t file_key[static AGE_FILE_KEY_LEN],
		const struct age_dh *dh);

/* Opens the body of s, whose ephemeral share is share, with the identity
 * secret sk (dh->pk its public key): 0 with file_key set, AGE_WRONG_KEY,
 * -EINVAL, -ENOMEM. */
int age_dh_unwrap(uint8_t file_key[static AGE_FILE_KEY_LEN],
		  const struct age_stanza *s,
		  const uint8_t share[static AGE_X25519_KEY_LEN],
		  const uint8_t sk[static AGE_X25519_KEY_LEN],
		  const struct age_dh *dh);

#endif
