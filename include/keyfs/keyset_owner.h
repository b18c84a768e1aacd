/* Owners by name, as GNU tar restores them: a backup made on another
 * host (or before a rebuild) records user and group names beside the
 * numbers, and the names are what the services' accounts are called. */
#ifndef KEYFS_KEYSET_OWNER_H
#define KEYFS_KEYSET_OWNER_H

#include <stddef.h>

#include "keyfs/keyset.h"

/* What keyset_owners_local() could not map by name. */
struct keyset_owner_report {
	size_t members;		/* members whose user or group kept its number */
	char user[KEYSET_OWNER_MAX + 1];	/* the first such name, "" none */
	char group[KEYSET_OWNER_MAX + 1];
};

/* For every member (and the top) with a recorded owner, the uid and gid of its user
 * and group names on this host; where a name does not exist here, the
 * recorded number stays, and that member is counted in *r. A name that
 * maps to another number than recorded is the normal case on a rebuilt
 * host, not a problem. Members without names keep their numbers. */
void keyset_owners_local(struct keyset *ks, struct keyset_owner_report *r);

#endif
