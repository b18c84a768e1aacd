/* Keyset <-> tar archive (the plaintext of an export), via libarchive.
 *
 * The tar is deterministic: "<name>/" (the recorded top's mode, owner
 * and names, keyset_top_recorded(); else 0700, 0:0 root) then each member
 * as "<name>/<path>" in path order (directories as "<path>/", symlinks
 * with their target as is), then "<name>/KEYSET.ini" (0600, 0:0 root).
 * Members keep their numeric owner and its names (0:0 "root" when none
 * was recorded), modes (within KEYSET_MODE_MASK), mtimes and extended
 * attributes; the top directory and KEYSET.ini take the keyset's newest
 * member mtime. The format is pax as libarchive writes it restricted: a
 * ustar header alone for an entry that needs no more, so a flat keyset
 * of root's files gives the bytes format 1 gave; a pax header for long
 * paths or links, ids ustar cannot hold, and xattrs (SCHILY.xattr.*,
 * what GNU tar --xattrs reads). No padding beyond the two end blocks.
 * The same keyset always gives the same bytes. */
#ifndef KEYFS_BUNDLE_H
#define KEYFS_BUNDLE_H

#include "keyfs/keyset.h"

#define BUNDLE_FPR_LEN 32 /* BLAKE2b-256 */

/* Fingerprint: BLAKE2b-256 over, for each member in path order,
 * path, NUL, [extension], mode (& KEYSET_MODE_MASK) as 4 octal digits,
 * NUL, length as 8-byte little-endian, contents. The extension is there
 * for any member but a regular file without xattrs owned by 0:0 (or by
 * nobody recorded), so a format 1 keyset keeps its fingerprint: "+",
 * NUL, a type letter (f, d, l), then as 8-byte little-endian numbers
 * (each string and value length-prefixed): owner recorded (0/1), uid,
 * gid, link target, xattr count, each xattr name and value. Owner names
 * and mtimes are not covered (a restore sets numeric ids). Then, for a
 * recorded top only: "/", NUL, its mode as 4 octal digits, NUL, uid
 * and gid as 8-byte little-endian. KEYSET.ini is not part of it. hex is 64 chars + NUL. */
void bundle_fingerprint(const struct keyset *ks, char hex[static 2 * BUNDLE_FPR_LEN + 1]);

/* Build the tar. *tar is in guarded memory (it holds keys): secmem_free().
 * -EINVAL if the keyset cannot be written faithfully: an invalid name,
 * members not sorted and unique, a member whose directory is not a
 * directory member, a link leaving the keyset, an mtime outside
 * 0..8^11-1, or a hint with a control character. */
int bundle_pack(const struct keyset *ks, uint8_t **tar, size_t *len);

/* Size bundle_pack() would produce, without keeping the bytes. */
int bundle_size(const struct keyset *ks, size_t *len);

/* What signs KEYSET.ini (sshsig.h): the armored signature of ini into
 * sig (size bytes); its length, or -errno. The same ini must give the
 * same bytes (Ed25519 does), so that a size and a pack agree. */
#define BUNDLE_SIG_MAX 1024
struct bundle_signer {
	int (*sign)(void *arg, const uint8_t *ini, size_t len, char *sig, size_t size);
	void *arg;
};

/* bundle_pack() and bundle_size() with "<name>/KEYSET.sig" (0600, 0:0
 * root) after KEYSET.ini: signer's signature of KEYSET.ini's bytes,
 * which list every member (type, mode, owner, link, xattr names, sha256
 * of its contents) and the fingerprint, so the signature covers the
 * whole keyset. signer NULL: unsigned, as bundle_pack(). */
int bundle_pack_signed(const struct keyset *ks, const struct bundle_signer *signer, uint8_t **tar,
		       size_t *len);
int bundle_size_signed(const struct keyset *ks, const struct bundle_signer *signer, size_t *len);

/* Read any tar libarchive reads (GNU, pax, ustar): exactly one top
 * directory (named after a valid keyset) holding regular files,
 * directories and symlinks. Refuses (-EINVAL), before anything is kept:
 * absolute paths, "." or ".." components, invalid names, paths deeper
 * than KEYSET_DEPTH_MAX, hard links, devices, FIFOs, sockets, sparse
 * files, a symlink whose target leaves the keyset (lexically, from its
 * directory), a member whose directory is not a directory entry of the
 * archive, duplicate paths, more than KEYSET_MEMBERS_MAX members, a
 * member over max_member bytes, xattrs over the keyset bounds. Xattrs
 * outside user.* and security.* are not kept.
 * KEYSET.ini, if present, is not a member: its "hint = " line is taken
 * into ks->hint; a "name = " line naming another keyset is refused; a
 * "format = 1" line says the owners in the archive were not recorded
 * (members get owned = false). Without KEYSET.ini owners are kept.
 * The two zero blocks that end a tar must be present, so a tar cut at an
 * entry boundary is refused too. Member modes are kept & KEYSET_MODE_MASK
 * (what the keystore applies: no group or other write, no setuid, setgid
 * or sticky bit from an archive). Member mtimes are kept, clamped into
 * 0..8^11-1 so that bundle_pack() can write whatever was read.
 * *ks must be empty on entry; on error it is left empty. */
int bundle_unpack(const uint8_t *tar, size_t len, size_t max_member, struct keyset *ks);
/* The same; a refused tree (a member outside its directories, a link
 * leaving the keyset) is described in why (size bytes, set when
 * non-empty), naming the member. */
int bundle_unpack_why(const uint8_t *tar, size_t len, size_t max_member, struct keyset *ks,
		      char *why, size_t why_size);

/* What a tar carries beside its keyset, for a signature check: the
 * bytes of KEYSET.ini as they were (NUL-terminated; NULL if none) and
 * of KEYSET.sig (sig_len 0 if none). */
struct bundle_proof {
	char *ini;
	size_t ini_len;
	char sig[BUNDLE_SIG_MAX + 1];
	size_t sig_len;
};

/* bundle_unpack_why() that also fills *proof (zeroed on entry, freed
 * with bundle_proof_free() also on error). KEYSET.sig is never a member. */
int bundle_unpack_proof(const uint8_t *tar, size_t len, size_t max_member, struct keyset *ks,
			struct bundle_proof *proof, char *why, size_t why_size);
void bundle_proof_free(struct bundle_proof *proof);

/* Does proof's KEYSET.ini list exactly ks, as bundle_pack_signed()
 * writes it for ks? ks as bundle_unpack_proof() gave it, before any
 * owner or restore rule changed it. So a signature over KEYSET.ini
 * covers every member. */
bool bundle_proof_matches(const struct keyset *ks, const struct bundle_proof *proof);

#endif
