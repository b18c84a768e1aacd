/* Walking a directory and opening what the walk found, without blocking
 * or following links. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "keyfs/dirwalk.h"

static DIR *open_dir(int dfd, const char *path)
{
	DIR *dir;
	int fd, err;

	fd = openat(dfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	dir = fdopendir(fd);
	if (!dir) {
		err = errno;
		close(fd);
		errno = err;
	}
	return dir;
}

static bool dots(const char *name)
{
	return name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]));
}

int dirwalk_each(int dfd, const char *path,
	     int (*fn)(int dirfd, const char *name, const struct stat *st, void *arg), void *arg)
{
	struct dirent *de;
	struct stat st;
	DIR *dir;
	int ret = 0;

	dir = open_dir(dfd, path);
	if (!dir)
		return -errno;
	while (!ret && (de = readdir(dir))) {
		if (dots(de->d_name))
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			ret = errno == ENOENT ? 0 : -errno; /* gone meanwhile */
		else
			ret = fn(dirfd(dir), de->d_name, &st, arg);
	}
	closedir(dir);
	return ret;
}

int dirwalk_types(int dfd, const char *path,
		  int (*fn)(int dirfd, const char *name, mode_t type, void *arg), void *arg)
{
	struct dirent *de;
	struct stat st;
	DIR *dir;
	int ret = 0;

	dir = open_dir(dfd, path);
	if (!dir)
		return -errno;
	while (!ret && (de = readdir(dir))) {
		if (dots(de->d_name))
			continue;
		if (de->d_type != DT_UNKNOWN)
			ret = fn(dirfd(dir), de->d_name, DTTOIF(de->d_type), arg);
		else if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			ret = errno == ENOENT ? 0 : -errno;
		else
			ret = fn(dirfd(dir), de->d_name, st.st_mode & S_IFMT, arg);
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
