/* One file of the seal cache: a one-line header, then the armored age
 * file:
 *   "keyfs-seal 2 <keyset> <stamp hex> <password id hex> <logN> <sealed-at> <length> <content> <sum>\n"
 * The header binds the bytes to the keyset they seal and the work factor
 * they were sealed at (0 for a seal to public recipients, which has no
 * scrypt; <password id> is then the recipients' id, sealkey.h), so a file copied under another keyset's name, or
 * sealed before the work factor changed, is never served as current.
 * <content> (export_content_id(), or "-" if not known) names what the
 * bytes seal, so a keyset whose files were rewritten with the same
 * content (restored from a backup, moved to a new disk) keeps its seal:
 * only the stamp in the header changes.
 * Files of the first format ("keyfs-seal 1 <stamp> <id> <sealed-at>
 * <length>") are still read: the name is the file's, the work factor
 * comes from the age header inside, the content is not known, and
 * sealfile_rewrite() writes them in the new format with the very same
 * armored bytes.
 * <sum> (SipHash-2-4 of the armored bytes, 16 hex digits; BLAKE2b-128,
 * 32 digits, in files written before it; absent in older ones still)
 * lets a reader check the bytes whole.
 * Written without an fsync each (the seal cache syncs its files a batch
 * at a time), in place for a keyset's first and else to a temporary
 * renamed over the old, so a crash leaves the old file, the new one, or
 * one that is never served: its size disagrees with its header, or its
 * bytes with their sum. */
#ifndef KEYFS_SEALFILE_H
#define KEYFS_SEALFILE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "keyfs/keyset.h"
#include "keyfs/verifier.h"

#define SEALFILE_SUM_LEN 16 /* the longest sum's bytes */

struct sealfile {
	char name[KEYSET_NAME_MAX + 1];	/* keyset sealed; "" in a first-format file */
	uint64_t stamp;			/* keyset version sealed */
	uint8_t pwid[VERIFIER_ID_LEN];	/* password it was sealed under */
	int logn;			/* scrypt work factor it was sealed at; 0: recipients */
	char content[65];		/* export_content_id(); "" if not known */
	time_t sealed_at;
	size_t len;			/* armored bytes */
	size_t off;			/* where they start in the file */
	char sum[2 * SEALFILE_SUM_LEN + 1]; /* hex; "" in older files */
};

/* Reads and checks the header of an open cache file: -EINVAL if it is
 * torn or not one. */
int sealfile_read(int fd, struct sealfile *h);

/* Writes dfd/name atomically from h (name, stamp, pwid, logn, sealed_at,
 * len) and pem; sets h->off. */
int sealfile_write(int dfd, const char *name, struct sealfile *h, const char *pem);

/* Checks the armored bytes of the open cache file fd against h's sum:
 * -EINVAL if they differ (a file torn by a crash). */
int sealfile_check(int fd, const struct sealfile *h);

/* Rewrites the header of the cache file open as fd (read as h, then
 * changed by the caller: name, stamp, content) in the current format,
 * keeping its armored bytes. */
int sealfile_rewrite(int dfd, const char *name, int fd, struct sealfile *h);

#endif
