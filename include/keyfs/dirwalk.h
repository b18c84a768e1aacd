/* One directory walk, and one safe way to open a file found by it, for
 * the modules that read directories of their own (keystore, versions,
 * seal cache, state). */
#ifndef KEYFS_DIRWALK_H
#define KEYFS_DIRWALK_H

#include <stdio.h>
#include <sys/stat.h>

/* openat(dfd, name, flags) leaving the access time as it is where the
 * kernel lets it (O_NOATIME: the file's owner, or CAP_FOWNER), as backup
 * tools read: keyfs reading a key for its backup is no use of the key,
 * which an administrator may tell by its access time. Every open of a
 * walk below goes through it. */
int dirwalk_openat(int dfd, const char *name, int flags);

/* Calls fn(dirfd, name, st, arg) for each entry of dfd/path but "." and
 * "..", in no particular order, with st from fstatat (no symlinks
 * followed); the walk stops at the first nonzero return, which it
 * returns. dirfd is the walked directory, valid during the call. */
int dirwalk_each(int dfd, const char *path,
	     int (*fn)(int dirfd, const char *name, const struct stat *st, void *arg), void *arg);

/* dirwalk_each() for walks that need only an entry's type (its S_IFMT
 * bits): taken from the directory where the file system tells it, so a
 * directory of a hundred thousand entries is listed without a stat each. */
int dirwalk_types(int dfd, const char *path,
		  int (*fn)(int dirfd, const char *name, mode_t type, void *arg), void *arg);

/* The same walks of the directory fd itself, from its start (its offset
 * moves): for a caller that opened fd to walk it and reads it nowhere
 * else meanwhile, which saves opening it a second time. */
int dirwalk_types_fd(int fd, int (*fn)(int dirfd, const char *name, mode_t type, void *arg),
		     void *arg);
int dirwalk_each_fd(int fd, int (*fn)(int dirfd, const char *name, const struct stat *st,
				      void *arg), void *arg);

/* The modification and change times of the directory dfd, as text ("?"
 * if unknown): a file made, renamed or removed in it since makes them
 * differ. For caches of a directory's contents kept in a file. */
void dirwalk_times(int dfd, char buf[static 64]);

/* dfd/name opened for reading as a stream, no link followed; NULL (errno
 * set) if it cannot be. */
FILE *dirwalk_fopen(int dfd, const char *name);

/* A file that caches what a directory held, read as a stream: its first
 * line is "MAGIC TIMES COUNT", TIMES being dirwalk_times() of directory
 * dir when the file was written. dirwalk_cache_open() opens dfd/name (no
 * link followed) and reads that line: NULL unless dir still has those
 * times, else the stream after it, and COUNT in *count. */
FILE *dirwalk_cache_open(int dfd, const char *name, const char *magic, int dir, size_t *count);
void dirwalk_cache_head(FILE *out, const char *magic, int dir, size_t count);

/* Opens dfd/name read-only for reading its bytes. Never blocks (a FIFO
 * or device swapped in by a writer of the directory would hang the
 * caller) and never follows a link. The opened file must be a regular
 * file with exactly one link (a hard link can smuggle in a file from
 * outside, such as /etc/shadow); when seen is given, it must also be the
 * very file a walk saw (same device and inode), else -EAGAIN: it changed
 * in between and the caller may retry. Returns the fd or -errno; *st
 * (optional) receives its fstat. */
int dirwalk_open_regular(int dfd, const char *name, const struct stat *seen, struct stat *st);

#endif
