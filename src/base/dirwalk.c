/* Walking a directory and opening what the walk found, without blocking
 * or following links. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "keyfs/dirwalk.h"

int dirwalk_each(int dfd, const char *path,
	     int (*fn)(int dirfd, const char *name, const struct stat *st, void *arg), void *arg)
{
	struct dirent *de;
	struct stat st;
	DIR *dir;
	int fd, ret = 0;

	fd = openat(dfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (!dir) {
		ret = -errno;
		close(fd);
		return ret;
	}
	while (!ret && (de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			ret = errno == ENOENT ? 0 : -errno; /* gone meanwhile */
		else
			ret = fn(fd, de->d_name, &st, arg);
	}
	closedir(dir);
	return ret;
}

int dirwalk_open_regular(int dfd, const char *name, const struct stat *seen, struct stat *st)
{
	struct stat got;
	int fd, ret;

	fd = openat(dfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &got)) {
		ret = -errno;
		goto err;
	}
	if (seen && (got.st_dev != seen->st_dev || got.st_ino != seen->st_ino)) {
		ret = -EAGAIN;
		goto err;
	}
	if (!S_ISREG(got.st_mode) || got.st_nlink != 1) {
		ret = -EINVAL;
		goto err;
	}
	if (st)
		*st = got;
	return fd;
err:
	close(fd);
	return ret;
}
