/* Replacing a small file so that a crash leaves the old or the new one:
 * written to an unnamed O_TMPFILE in its directory (or, where the
 * filesystem has none, to ".<name>.tmp" beside it), fsynced, linked in
 * or renamed over the old one, and the directory fsynced. Used for
 * metadata, seal cache files and the password verifier. */
#ifndef KEYFS_REPLACE_H
#define KEYFS_REPLACE_H

#include <stdio.h>
#include <sys/types.h>
#include <sys/uio.h>

/* path is relative to dfd; the new file is mode 0600. */
int replace_file(int dfd, const char *path, const struct iovec *iov, int iovcnt);
/* The same with another mode (for files other users read, such as the
 * metrics textfile), set whatever the umask. */
int replace_file_mode(int dfd, const char *path, mode_t mode, const struct iovec *iov, int iovcnt);

/* The same (mode 0600) without either fsync, for files written many at
 * a time whose readers check them whole (the seal cache): the caller
 * makes a batch durable with one syncfs(). A crash before it may leave
 * the old file, the new one, or one its reader refuses as torn. A name
 * nothing has yet is written in place, so its reader must not look at
 * it before this returns. */
int replace_file_unsynced(int dfd, const char *path, const struct iovec *iov, int iovcnt);

/* Replaces dfd/path (a name in dfd) by what put(out, arg) writes, through
 * a stream: for files too large to build in memory first. The file is
 * fsynced and renamed over the old one; the directory is not. put's
 * error, or the stream's, leaves the old file. */
int replace_stream(int dfd, const char *path, int (*put)(FILE *out, void *arg), void *arg);

/* fsync of the directory dfd/dir: makes renames in it durable. */
int replace_dir_fsync(int dfd, const char *dir);

/* Writes all len bytes of buf to fd, past short writes and EINTR (a
 * full disk is -ENOSPC, a write of nothing -EIO). */
int replace_write_all(int fd, const void *buf, size_t len);

/* Is name a temporary file replace_file() left behind in a crash? */
int replace_is_temp(const char *name);

#endif
