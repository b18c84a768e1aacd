/* A live keyset's path on a host that lacks it: a rebuilt server has no
 * /etc/wireguard until its keys are restored. */
#ifndef KEYFS_LIVE_PATH_H
#define KEYFS_LIVE_PATH_H

#include <stddef.h>

#include "keyfs/keyset.h"

/* Opens the directory path (absolute) for ks' install, making what is
 * missing of it: parents root's (the daemon's) 0755, path itself 0700
 * until the install gives it ks->top's mode and owner. Before anything
 * is made, the deepest directory that exists (reached as configured)
 * must be one only root or the keys' owner can change, up to /
 * (keytree_check_above(); -EACCES, why set); what is made is then
 * opened from it by name with O_NOFOLLOW. *made counts the directories
 * made, each logged under keyset's name. -EINVAL for a path that is not
 * absolute or has "." or ".." among what is to be made. */
int live_path_make(const char *keyset, const char *path, const struct keyset *ks, unsigned *made,
		   char *why, size_t size);

#endif
