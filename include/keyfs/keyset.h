/* A keyset in memory: a name and a flat list of key files.
 * Member data is key material and lives in sodium_malloc() memory. */
#ifndef KEYFS_KEYSET_H
#define KEYFS_KEYSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define KEYSET_NAME_MAX 64
#define KEYSET_MEMBER_NAME_MAX 64
#define KEYSET_MEMBERS_MAX 256
#define KEYSET_HINT_MAX 256
#define KEYSET_INI "KEYSET.ini"
#define KEYSET_FORMAT 1
/* The permission bits a keyset member can have: what the keystore applies
 * when it writes a key (owner's, never group or other write, no setuid,
 * setgid or sticky bit). Kept in memory, compared and fingerprinted as
 * applied, so that a restored keyset equals its backup and re-importing
 * the same backup changes nothing. */
#define KEYSET_MODE_MASK 0755

struct keyset_member {
	char name[KEYSET_MEMBER_NAME_MAX + 1];
	mode_t mode;	/* permission bits, within KEYSET_MODE_MASK */
	time_t mtime;
	uint8_t *data;	/* sodium_malloc()ed; NULL when len == 0 */
	size_t len;
};

struct keyset {
	char name[KEYSET_NAME_MAX + 1];
	char hint[KEYSET_HINT_MAX + 1]; /* "" if none */
	struct keyset_member *m;	/* sorted by name (strcmp) */
	size_t n;
};

/* [A-Za-z0-9._-]{1,64}, not starting with '.': keyset names. */
bool keyset_name_valid(const char *name);
/* Member names: same alphabet and length; KEYSET.ini is reserved. */
bool keyset_member_name_valid(const char *name);

/* Append a member (copies data into guarded memory; mode & KEYSET_MODE_MASK kept).
 * Keeps no order; call keyset_sort() when done. -EEXIST on a duplicate
 * name, -EINVAL on an invalid one, -E2BIG past KEYSET_MEMBERS_MAX. */
int keyset_add(struct keyset *ks, const char *name, mode_t mode, time_t mtime,
	       const uint8_t *data, size_t len);
void keyset_sort(struct keyset *ks);
/* Newest member mtime (0 for an empty keyset): the version's time. */
time_t keyset_mtime(const struct keyset *ks);
/* True if both hold the same member names, modes (& KEYSET_MODE_MASK)
 * and contents. The
 * keyset names, mtimes and hints are not compared. Both must be sorted. */
bool keyset_equal(const struct keyset *a, const struct keyset *b);
/* Wipes and frees members; leaves *ks empty and reusable. */
void keyset_clear(struct keyset *ks);

#endif
