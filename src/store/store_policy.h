/* What a restore may put on disk, and so what a backup holds: the
 * rules that keep a forged or careless archive from planting a way to
 * root. setuid, setgid and sticky bits never make it into a keyset
 * (KEYSET_MODE_MASK); on top of that, per keyset:
 * - execute bits only on files its executable globs match (certbot's
 *   renewal-hooks/ **); on every other file they are cleared;
 * - extended attributes: user.* always, security.capability never,
 *   any other security.* (SELinux, IMA labels) only where its xattrs
 *   globs name it.
 * Applied to a keyset read from disk (its export) and to one restored
 * (before it is compared or written), so a backup restores as exported
 * and importing it again changes nothing. */
#ifndef KEYFS_STORE_POLICY_H
#define KEYFS_STORE_POLICY_H

#include <stddef.h>

#include "keyfs/keyset.h"

struct store_policy {
	const char *name;	/* the keyset's, for the log */
	const char *executable;	/* member path globs, space-separated; "" none */
	const char *xattrs;	/* xattr name globs (security.selinux), "" none */
};

/* Applies p to ks in place and logs each member changed (the first few
 * by name, then a count), saying what it was left out of: "restore"
 * (an archive) or "backup" (a keyset read from disk). Returns how many
 * members it changed; first (optional, size bytes) describes the first
 * ("member \"x\": execute bits ..."), "" if none. */
size_t store_policy_apply(struct keyset *ks, const struct store_policy *p, const char *what,
			  char *first, size_t size);

/* Would p keep this xattr? */
bool store_policy_xattr(const struct store_policy *p, const char *name);

#endif
