/* Keyset <-> tar archive (the plaintext of an export), via libarchive.
 *
 * The tar is deterministic: "<name>/" (0700) then each member as
 * "<name>/<member>" in name order, then "<name>/KEYSET.ini" (0600); owner
 * 0:0 (uname/gname "root"), modes kept (within KEYSET_MODE_MASK), each
 * member its own mtime, the directory and KEYSET.ini the keyset's newest
 * member mtime, ustar format with no padding beyond the two end blocks.
 * The same keyset always gives the same bytes. */
#ifndef KEYFS_BUNDLE_H
#define KEYFS_BUNDLE_H

#include "keyfs/keyset.h"

#define BUNDLE_FPR_LEN 32 /* BLAKE2b-256 */

/* Fingerprint: BLAKE2b-256 over, for each member in name order,
 * name, NUL, mode (& KEYSET_MODE_MASK) as 4 octal digits, NUL, length as 8-byte little-endian,
 * contents. KEYSET.ini is not part of it. hex is 64 chars + NUL. */
void bundle_fingerprint(const struct keyset *ks, char hex[static 2 * BUNDLE_FPR_LEN + 1]);

/* Build the tar. *tar is sodium_malloc()ed (it holds keys): sodium_free().
 * -EINVAL if the keyset cannot be written faithfully: an invalid name,
 * members not sorted and unique, an mtime outside 0..8^11-1 (ustar), or
 * a hint with a control character. */
int bundle_pack(const struct keyset *ks, uint8_t **tar, size_t *len);

/* Size bundle_pack() would produce, without keeping the bytes. */
int bundle_size(const struct keyset *ks, size_t *len);

/* Read any tar libarchive reads (GNU, pax, ustar): exactly one top
 * directory (named after a valid keyset) holding regular files only.
 * Refuses (-EINVAL) absolute paths, "..", links, devices, nested
 * directories, duplicate names, invalid names, more than
 * KEYSET_MEMBERS_MAX members, a member over max_member bytes.
 * KEYSET.ini, if present, is not a member: its "hint = " line is taken
 * into ks->hint; a "name = " line naming another keyset is refused.
 * The two zero blocks that end a tar must be present, so a tar cut at an
 * entry boundary is refused too. Member modes are kept & KEYSET_MODE_MASK
 * (what the keystore applies: no group or other write, no setuid, setgid
 * or sticky bit from an archive). Member mtimes are kept, clamped into
 * 0..8^11-1 so that bundle_pack() can write whatever was read.
 * *ks must be empty on entry; on error it is left empty. */
int bundle_unpack(const uint8_t *tar, size_t len, size_t max_member, struct keyset *ks);

#endif
