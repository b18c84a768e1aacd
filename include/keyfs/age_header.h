/* The age v1 header (C2SP age spec): the version line, the recipient
 * stanzas ("-> type args..." and a base64 body) and the "---" line with
 * the header MAC. This module only parses and writes that format; what a
 * stanza's arguments and body mean is its recipient type's business
 * (age_recipient.h).
 *
 * Errors, as negative errno:
 *   -EINVAL  malformed header, stanza or base64; a stanza that cannot be
 *            written (too many arguments, a word that is not 1*VCHAR)
 *   -EBADMSG header MAC mismatch
 *   -ENOMEM  allocation failed
 */
#ifndef KEYFS_AGE_HEADER_H
#define KEYFS_AGE_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keyfs/age.h"

#define AGE_MAC_LEN 32
/* Arguments kept per stanza. More still parse (the format allows any
 * number), are counted in nargs and make the stanza unwritable; no
 * recipient type uses more than two. */
#define AGE_STANZA_ARGS_MAX 8

/* Unpadded base64 length of n bytes. */
#define AGE_B64_LEN(n) ((n) / 3 * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

/* A word of a stanza line; not NUL-terminated. */
struct age_str {
	const char *p;
	size_t len;
};

struct age_stanza {
	struct age_str type;
	struct age_str arg[AGE_STANZA_ARGS_MAX];
	size_t nargs; /* arguments after the type, all of them */
	const uint8_t *body; /* decoded */
	size_t bodylen;
	/* malloc()ed storage behind the fields above (the parser's decoded
	 * body, a recipient's arguments and body), freed by
	 * age_stanza_clear(); parsed words point into the parsed input. */
	void *mem;
};

struct age_header {
	struct age_stanza *stanza; /* malloc()ed array */
	size_t nstanzas;
	size_t cap; /* slots allocated in stanza */
	size_t mac_end; /* just past "---": the MAC covers [0, mac_end) */
	size_t payload; /* offset of the payload nonce */
	uint8_t mac[AGE_MAC_LEN];
};

/* Parses the header at the start of in; the stanzas' words point into in,
 * which must outlive h. At least one stanza, as the spec requires. On
 * success release h with age_header_free(); on failure h is left empty. */
int age_header_parse(const uint8_t *in, size_t len, struct age_header *h);
void age_header_free(struct age_header *h);

/* 0 if h's MAC, over in[0, h->mac_end), is the one file key makes. */
int age_header_verify(const struct age_header *h, const uint8_t *in,
		      const uint8_t key[static AGE_FILE_KEY_LEN]);

/* Bytes s takes in a header: its "-> " line and its body lines. */
size_t age_stanza_size(const struct age_stanza *s);
/* Bytes of a whole header whose stanzas take stanza_bytes. */
size_t age_header_size(size_t stanza_bytes);

/* Writes the header with the n stanzas and the MAC under key to out,
 * which has room for age_header_size() of their sizes; *hlen gets the
 * length written. */
int age_header_write(uint8_t *out, const struct age_stanza *s, size_t n,
		     const uint8_t key[static AGE_FILE_KEY_LEN], size_t *hlen);

bool age_stanza_is(const struct age_stanza *s, const char *type);
/* Frees s->mem and empties s. */
void age_stanza_clear(struct age_stanza *s);

/* Base64 as the spec wants it: standard alphabet, no padding, canonical.
 * decode returns the decoded length, or -EINVAL if src is not such base64
 * or decodes to more than cap bytes. encode writes AGE_B64_LEN(n)
 * characters, no NUL, and returns that length. */
long age_b64_decode(uint8_t *dst, size_t cap, const char *src, size_t n);
size_t age_b64_encode(char *dst, const uint8_t *bin, size_t n);

#endif
