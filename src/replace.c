/* Replacing a small file atomically: temporary, fsync, rename, directory
 * fsync (see replace.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/replace.h"

int dir_fsync(int dfd, const char *dir)
{
	int fd, ret = 0;

	fd = openat(dfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd))
		ret = -errno;
	close(fd);
	return ret;
}

static int write_all(int fd, const struct iovec *iov, int iovcnt)
{
	int i;

	for (i = 0; i < iovcnt; i++)
		if (write(fd, iov[i].iov_base, iov[i].iov_len) != (ssize_t)iov[i].iov_len)
			return errno ? -errno : -EIO;
	return 0;
}

int file_replace(int dfd, const char *path, const struct iovec *iov, int iovcnt)
{
	return file_replace_mode(dfd, path, 0600, iov, iovcnt);
}

static int replace(int dfd, const char *path, mode_t mode, const struct iovec *iov, int iovcnt,
		   bool sync)
{
	char dir[PATH_MAX], tmp[PATH_MAX];
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	int fd, ret;

	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
	if (snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, base) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	/* explicitly: the daemon's umask is 077 */
	ret = fchmod(fd, mode) ? -errno : 0;
	if (!ret)
		ret = write_all(fd, iov, iovcnt);
	if (!ret && sync && fsync(fd))
		ret = -errno;
	if (close(fd) && !ret)
		ret = -errno;
	/* rename: a reader that has the old file open keeps it */
	if (!ret && renameat(dfd, tmp, dfd, path))
		ret = -errno;
	if (ret) {
		unlinkat(dfd, tmp, 0);
		return ret;
	}
	return sync ? dir_fsync(dfd, dir) : 0;
}

int file_replace_mode(int dfd, const char *path, mode_t mode, const struct iovec *iov, int iovcnt)
{
	return replace(dfd, path, mode, iov, iovcnt, true);
}

int file_replace_unsynced(int dfd, const char *path, const struct iovec *iov, int iovcnt)
{
	return replace(dfd, path, 0600, iov, iovcnt, false);
}

int file_replace_is_temp(const char *name)
{
	size_t n = strlen(name);

	return name[0] == '.' && n > 5 && !strcmp(name + n - 4, ".tmp");
}
