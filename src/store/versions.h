/* Inactive versions of keysets, kept in keyfs' state directory (sfd)
 * as STATE_VERSIONS/<keyset>/<N>/ trees: the directory store's and the
 * live keysets'. Every call returns 0 or a negative errno. */
#ifndef KEYFS_VERSIONS_H
#define KEYFS_VERSIONS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "keyfs/keyset.h"
#include "keyfs/store.h"

/* Version numbers of a keyset, ascending (none: *n 0); free() *v. */
int versions_list(int sfd, const char *name, unsigned **v, size_t *n);
/* Stores ks as a version unless one holds the same keys: res says
 * STORE_KNOWN or STORE_VERSIONED, and which. */
int versions_put(int sfd, const struct keyset *ks, struct store_put *res);
/* Reads version of keyset name. */
int versions_read(int sfd, const char *name, unsigned version, struct keyset *ks);
/* Removes a version (once it was installed elsewhere). */
void versions_remove(int sfd, const char *name, unsigned version);

/* Beside version N, "N.unauthenticated" holds the fingerprint of a
 * version restored from a backup nothing vouched for (no known
 * signature, no password of keyfs'): activate installs it only when
 * told so. versions_list() skips it; versions_remove() removes it. */
#define VERSIONS_UNAUTH ".unauthenticated"
int versions_mark(int sfd, const char *name, unsigned version, const char *fpr);
/* Is version N marked? fpr (size bytes) gets the fingerprint. */
bool versions_marked(int sfd, const char *name, unsigned version, char *fpr, size_t size);
void versions_unmark(int sfd, const char *name, unsigned version);

/* Writes ks complete (fsynced, owners checked first: -EPERM) into a
 * fresh directory under STATE_TMP; tmp receives its path below sfd. */
int versions_write_tmp(int sfd, const struct keyset *ks, char tmp[static PATH_MAX]);
/* Renames the written tmp to dfd/dst (which must not exist) and fsyncs
 * dfd/parent; on failure tmp is removed. */
int versions_commit_tmp(int sfd, const char *tmp, int dfd, const char *dst, const char *parent);
/* Is ks equal to the keys in directory dfd/path? */
int versions_same(int dfd, const char *path, const struct keyset *ks, bool *same);
/* Removes what a crash left under STATE_TMP. */
void versions_clean_tmp(int sfd);

#endif
