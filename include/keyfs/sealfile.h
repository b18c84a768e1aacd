/* One file of the seal cache: a one-line header, then the armored age
 * file. "keyfs-seal 1 <stamp hex> <password id hex> <sealed-at> <length>\n".
 * Written to a temporary name, fsynced and renamed into place, so a crash
 * leaves the old file or the new one; a file whose size disagrees with
 * its header is never served. */
#ifndef KEYFS_SEALFILE_H
#define KEYFS_SEALFILE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "keyfs/verifier.h"

struct sealfile {
	uint64_t stamp;			/* keyset version sealed */
	uint8_t pwid[VERIFIER_ID_LEN];	/* password it was sealed under */
	time_t sealed_at;
	size_t len;			/* armored bytes */
	size_t off;			/* where they start in the file */
};

/* Reads and checks the header of an open cache file: -EINVAL if it is
 * torn or not one. */
int sealfile_read(int fd, struct sealfile *h);

/* Writes dfd/name atomically from h (stamp, pwid, sealed_at, len) and
 * pem; sets h->off. */
int sealfile_write(int dfd, const char *name, struct sealfile *h, const char *pem);


#endif
