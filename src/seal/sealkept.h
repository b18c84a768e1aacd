/* Kept seals: earlier cache files of a keyset that a backup read, kept
 * so that the same content coming back (a backup imported and activated
 * after the keys were damaged or changed) is served with the very bytes
 * the backup holds, and backup tools see no change.
 *
 * They live in <state>/cache/.kept/<keyset>@<n>, n in 1..SEALKEPT_MAX
 * (no keyset name starts with "." or holds "@"), each a cache file as
 * sealfile.h describes: header and armored bytes, moved there by rename
 * from the cache, never copied and never written in place. Only files
 * keyfs sealed itself get there: nothing imported is ever one. A kept
 * seal is served again only when its header names the keyset, the
 * content id now in the store and the sealing key (id and work factor)
 * that seals the keyset now, and its bytes match their sum: a file torn
 * by a crash is dropped and the keyset sealed anew. Kept seals of any
 * other key are dropped at the keyset's next seal, so a retired password
 * leaves no ciphertext behind.
 *
 * Bounds: SEALKEPT_MAX files per keyset, each no larger than an export
 * (import.max_size). Callers hold the keyset's sealing mark
 * (sealcache_priv.h): one writer of a keyset's cache files at a time. */
#ifndef KEYFS_SEALKEPT_H
#define KEYFS_SEALKEPT_H

#include <stdint.h>
#include <time.h>

#include "keyfs/verifier.h"

#include "sealfile.h"

#define SEALKEPT_DIR ".kept"
#define SEALKEPT_MAX 4

/* cfd is the cache directory; .kept is made below it when a first seal
 * is kept. */

/* The cache file cfd/name, read as cur (checked whole by the caller),
 * is about to be replaced by a seal under (pwid, logn): moves it among
 * name's kept seals (cur NULL: keeps nothing), in place of a kept seal of
 * the same content, else a free slot, else the oldest; and drops every
 * kept seal of name that is torn, or not sealed under (pwid, logn). */
int sealkept_put(int cfd, const char *name, const struct sealfile *cur,
		 const uint8_t pwid[static VERIFIER_ID_LEN], int logn);

/* Makes the kept seal of name holding content under (pwid, logn) the
 * cache file cfd/name again, its header restamped with stamp (*h: the
 * header as written), after keeping cur as sealkept_put() does. -ENOENT
 * if no whole one is kept (or none at all). *newest receives the latest seal time of any
 * kept seal of name (0: none), which no new seal may reuse. */
int sealkept_take(int cfd, const char *name, uint64_t stamp, const char *content,
		  const uint8_t pwid[static VERIFIER_ID_LEN], int logn, const struct sealfile *cur,
		  struct sealfile *h, time_t *newest);

#endif
