/* Keyset <-> tar archive (the plaintext of an export), via libarchive.
 *
 * The tar is deterministic: "<name>/" (0700) then each member as
 * "<name>/<member>" in name order, then "<name>/KEYSET.ini"; owner 0:0
 * (uname/gname "root"), modes kept, every time the keyset's newest member
 * mtime, ustar format. The same keyset always gives the same bytes. */
#ifndef KEYFS_BUNDLE_H
#define KEYFS_BUNDLE_H

#include "keyfs/keyset.h"

#define BUNDLE_FPR_LEN 32 /* BLAKE2b-256 */

/* Fingerprint: BLAKE2b-256 over, for each member in name order,
 * name, NUL, mode as 4 octal digits, NUL, length as 8-byte little-endian,
 * contents. KEYSET.ini is not part of it. hex is 64 chars + NUL. */
void bundle_fingerprint(const struct keyset *ks, char hex[static 2 * BUNDLE_FPR_LEN + 1]);

/* Build the tar. *tar is sodium_malloc()ed (it holds keys): sodium_free(). */
int bundle_pack(const struct keyset *ks, uint8_t **tar, size_t *len);

/* Size bundle_pack() would produce, without keeping the bytes. */
int bundle_size(const struct keyset *ks, size_t *len);

/* Read any tar libarchive reads (GNU, pax, ustar): exactly one top
 * directory (named after a valid keyset) holding regular files only.
 * Refuses (-EINVAL) absolute paths, "..", links, devices, nested
 * directories, duplicate names, invalid names, more than
 * KEYSET_MEMBERS_MAX members, a member over max_member bytes.
 * KEYSET.ini, if present, is not a member: its hint is taken into
 * ks->hint. On error *ks is left empty. */
int bundle_unpack(const uint8_t *tar, size_t len, size_t max_member, struct keyset *ks);

#endif
