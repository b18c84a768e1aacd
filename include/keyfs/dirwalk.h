/* One directory walk for the modules that read directories of their own
 * (keystore, versions, seal cache). */
#ifndef KEYFS_DIRWALK_H
#define KEYFS_DIRWALK_H

#include <sys/stat.h>

/* Calls fn(dirfd, name, st, arg) for each entry of dfd/path but "." and
 * "..", in no particular order, with st from fstatat (no symlinks
 * followed); the walk stops at the first nonzero return, which it
 * returns. dirfd is the walked directory, valid during the call. */
int dir_each(int dfd, const char *path,
	     int (*fn)(int dirfd, const char *name, const struct stat *st, void *arg), void *arg);

#endif
