/* Replacing a small file atomically: temporary, fsync, rename, directory
 * fsync (see replace.h).
 *
 * The temporary is an unnamed O_TMPFILE where the filesystem has them:
 * its inode is allocated without the directory's lock and a new file
 * then costs one directory entry, not a create and a rename. Seals and
 * records are written thousands a second, and on ext4 the allocation
 * under that lock is what two writers wait on. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/replace.h"

int replace_dir_fsync(int dfd, const char *dir)
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

int replace_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One writev() for the whole content, the usual case; what a short
 * write leaves is written piece by piece. */
static int write_all(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t n;
	size_t done;
	int i, ret = 0;

	do
		n = writev(fd, iov, iovcnt);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	done = (size_t)n;
	for (i = 0; !ret && i < iovcnt; i++) {
		if (done >= iov[i].iov_len) {
			done -= iov[i].iov_len;
			continue;
		}
		ret = replace_write_all(fd, (const char *)iov[i].iov_base + done,
					iov[i].iov_len - done);
		done = 0;
	}
	return ret;
}

/* The content, mode set explicitly (the daemon's umask is 077). */
static int fill(int fd, mode_t mode, const struct iovec *iov, int iovcnt, bool sync)
{
	int ret;

	if (fchmod(fd, mode))
		return -errno;
	ret = write_all(fd, iov, iovcnt);
	if (!ret && sync && fsync(fd))
		ret = -errno;
	return ret;
}

/* tmp replaces path; a reader that has the old file open keeps it. tmp
 * is gone either way. */
static int rename_over(int dfd, const char *tmp, const char *path)
{
	int ret = 0;

	if (renameat(dfd, tmp, dfd, path)) {
		ret = -errno;
		unlinkat(dfd, tmp, 0);
	}
	return ret;
}

/* Gives the unnamed file fd the name path: linked straight in when
 * nothing has it yet, else linked as tmp and renamed over the old one.
 * -ENOENT without /proc. */
static int link_tmpfile(int fd, int dfd, const char *path, const char *tmp)
{
	char proc[32];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (!linkat(AT_FDCWD, proc, dfd, path, AT_SYMLINK_FOLLOW))
		return 0;
	if (errno != EEXIST)
		return -errno;
	unlinkat(dfd, tmp, 0); /* a crash's leftover */
	if (linkat(AT_FDCWD, proc, dfd, tmp, AT_SYMLINK_FOLLOW))
		return -errno;
	return rename_over(dfd, tmp, path);
}

/* 1: the filesystem has no O_TMPFILE (or there is no /proc to link one
 * with), write a named temporary instead. */
static int replace_unnamed(int dfd, const char *dir, const char *path, const char *tmp, mode_t mode,
			   const struct iovec *iov, int iovcnt, bool sync)
{
	int fd, ret;

	fd = openat(dfd, dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno == EOPNOTSUPP || errno == EISDIR ? 1 : -errno;
	ret = fill(fd, mode, iov, iovcnt, sync);
	if (!ret)
		ret = link_tmpfile(fd, dfd, path, tmp);
	close(fd);
	return ret == -ENOENT ? 1 : ret;
}

static int replace_named(int dfd, const char *path, const char *tmp, mode_t mode,
			 const struct iovec *iov, int iovcnt, bool sync)
{
	int fd, ret;

	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	ret = fill(fd, mode, iov, iovcnt, sync);
	if (close(fd) && !ret)
		ret = -errno;
	if (!ret)
		return rename_over(dfd, tmp, path);
	unlinkat(dfd, tmp, 0);
	return ret;
}

/* An unsynced file whose name nothing has yet is written in place: a
 * reader of such files refuses a torn one whatever its name, so a
 * temporary would only add an inode on the orphan list and a link (ext4:
 * a third of the CPU of writing the file). Its mode is 0600 as created:
 * a umask only takes bits away. 1: the name is taken. */
static int create_new(int dfd, const char *path, const struct iovec *iov, int iovcnt)
{
	int fd, ret;

	fd = openat(dfd, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno == EEXIST ? 1 : -errno;
	ret = write_all(fd, iov, iovcnt);
	if (close(fd) && !ret)
		ret = -errno;
	if (ret)
		unlinkat(dfd, path, 0);
	return ret;
}

static int replace(int dfd, const char *path, mode_t mode, const struct iovec *iov, int iovcnt,
		   bool sync)
{
	char dir[PATH_MAX], tmp[PATH_MAX];
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	int ret;

	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
	if (snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, base) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	ret = sync ? 1 : create_new(dfd, path, iov, iovcnt);
	if (ret == 1)
		ret = replace_unnamed(dfd, dir, path, tmp, mode, iov, iovcnt, sync);
	if (ret == 1)
		ret = replace_named(dfd, path, tmp, mode, iov, iovcnt, sync);
	if (ret)
		return ret;
	return sync ? replace_dir_fsync(dfd, dir) : 0;
}

int replace_file(int dfd, const char *path, const struct iovec *iov, int iovcnt)
{
	return replace_file_mode(dfd, path, 0600, iov, iovcnt);
}

int replace_file_mode(int dfd, const char *path, mode_t mode, const struct iovec *iov, int iovcnt)
{
	return replace(dfd, path, mode, iov, iovcnt, true);
}

int replace_file_unsynced(int dfd, const char *path, const struct iovec *iov, int iovcnt)
{
	return replace(dfd, path, 0600, iov, iovcnt, false);
}

int replace_stream(int dfd, const char *path, int (*put)(FILE *out, void *arg), void *arg)
{
	char tmp[NAME_MAX + 1];
	FILE *out;
	int fd, ret;

	if (strchr(path, '/') || snprintf(tmp, sizeof(tmp), ".%s.tmp", path) >= (int)sizeof(tmp))
		return -EINVAL;
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	out = fdopen(fd, "w");
	if (!out) {
		ret = -errno;
		close(fd);
		goto out;
	}
	ret = put(out, arg);
	if ((fflush(out) || fsync(fileno(out))) && !ret)
		ret = -errno;
	if (fclose(out) && !ret)
		ret = -EIO;
	if (!ret)
		return rename_over(dfd, tmp, path);
out:
	unlinkat(dfd, tmp, 0);
	return ret;
}

int replace_is_temp(const char *name)
{
	size_t n = strlen(name);

	return name[0] == '.' && n > 5 && !strcmp(name + n - 4, ".tmp");
}
