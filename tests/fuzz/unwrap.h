/* What fuzz_unwrap_x25519 and fuzz_unwrap_ssh share: a whole age file
 * (binary or armored) opened with one fixed identity of the type under
 * test, through age_unseal_with() as an import does. */
#ifndef KEYFS_FUZZ_UNWRAP_H
#define KEYFS_FUZZ_UNWRAP_H

#include <stddef.h>
#include <stdint.h>

#include "keyfs/age_recipient.h"

/* Opens data with [ours] and with [other, ours], other being a key no
 * seed was sealed to, and aborts unless:
 * - an error is one age.h documents;
 * - an opened file was opened by ours, into fewer bytes than the file;
 * - a wrong identity tried first never changes the plaintext, and never
 *   turns a file ours opens into "no identity opens it" (only a hard
 *   error of the other key's type may stop the search, as in age). */
void fuzz_unwrap(const uint8_t *data, size_t size, const struct age_identity *ours,
		 const struct age_identity *other);

#endif
