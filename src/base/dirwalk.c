/* Walking a directory and opening what the walk found, without blocking
 * or following links. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keyfs/dirwalk.h"

static bool dots(const char *name)
{
	return name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]));
}

/* getdents64() straight, not readdir(): fdopendir() costs an fstat and
 * two fcntl calls, and a keyset is walked several times per seal, a
 * hundred thousand keysets on a large store. The buffer is readdir()'s
 * size: a directory of a few entries is read in one call. */
#define DENTS_BUF 32768

/* The directory fd from where its offset is. */
static int walk(int fd, int (*fn)(int dirfd, const char *name, mode_t type, void *arg), void *arg)
{
	struct dirent64 *de;
	struct stat st;
	char *buf;
	ssize_t n, off;
	int ret = 0;

	buf = malloc(DENTS_BUF);
	if (!buf)
		return -ENOMEM;
	while (!ret && (n = getdents64(fd, buf, DENTS_BUF)) > 0) {
		for (off = 0; !ret && off < n; off += de->d_reclen) {
			de = (struct dirent64 *)(buf + off);
			if (!de->d_ino || dots(de->d_name))
				continue; /* deleted entries, as readdir() skips them */
			if (de->d_type != DT_UNKNOWN)
				ret = fn(fd, de->d_name, DTTOIF(de->d_type), arg);
			else if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW))
				ret = errno == ENOENT ? 0 : -errno;
			else
				ret = fn(fd, de->d_name, st.st_mode & S_IFMT, arg);
		}
	}
	if (!ret && n < 0)
		ret = -errno;
	free(buf);
	return ret;
}

int dirwalk_openat(int dfd, const char *name, int flags)
{
	int fd = openat(dfd, name, flags | O_NOATIME);

	return fd < 0 && errno == EPERM ? openat(dfd, name, flags) : fd;
}

int dirwalk_types(int dfd, const char *path,
		  int (*fn)(int dirfd, const char *name, mode_t type, void *arg), void *arg)
{
	int fd, ret;

	fd = dirwalk_openat(dfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = walk(fd, fn, arg);
	close(fd);
	return ret;
}

int dirwalk_types_fd(int fd, int (*fn)(int dirfd, const char *name, mode_t type, void *arg),
		     void *arg)
{
	if (lseek(fd, 0, SEEK_SET) < 0)
		return -errno;
	return walk(fd, fn, arg);
}

struct each {
	int (*fn)(int dirfd, const char *name, const struct stat *st, void *arg);
	void *arg;
};

static int stat_one(int dirfd, const char *name, mode_t type, void *arg)
{
	struct each *e = arg;
	struct stat st;

	(void)type;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW))
		return errno == ENOENT ? 0 : -errno; /* gone meanwhile */
	return e->fn(dirfd, name, &st, e->arg);
}

int dirwalk_each(int dfd, const char *path,
	     int (*fn)(int dirfd, const char *name, const struct stat *st, void *arg), void *arg)
{
	return dirwalk_types(dfd, path, stat_one, &(struct each){ fn, arg });
}

int dirwalk_each_fd(int fd, int (*fn)(int dirfd, const char *name, const struct stat *st,
				      void *arg), void *arg)
{
	return dirwalk_types_fd(fd, stat_one, &(struct each){ fn, arg });
}

void dirwalk_times(int dfd, char buf[static 64])
{
	struct stat st;

	if (fstat(dfd, &st))
		snprintf(buf, 64, "?");
	else
		snprintf(buf, 64, "%lld.%09ld %lld.%09ld", (long long)st.st_mtim.tv_sec,
			 st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
}

FILE *dirwalk_fopen(int dfd, const char *name)
{
	FILE *in;
	int fd;

	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	in = fd < 0 ? NULL : fdopen(fd, "r");
	if (!in && fd >= 0)
		close(fd);
	return in;
}

FILE *dirwalk_cache_open(int dfd, const char *name, const char *magic, int dir, size_t *count)
{
	char want[64], *line = NULL;
	size_t cap = 0, skip;
	bool ok;
	FILE *in;

	in = dirwalk_fopen(dfd, name);
	if (!in)
		return NULL;
	dirwalk_times(dir, want);
	skip = strlen(magic) + 1 + strlen(want);
	ok = getline(&line, &cap, in) > 0 && !strncmp(line, magic, strlen(magic)) &&
	     line[strlen(magic)] == ' ' && !strncmp(line + strlen(magic) + 1, want, strlen(want)) &&
	     sscanf(line + skip, " %zu", count) == 1;
	free(line);
	if (!ok) {
		fclose(in);
		return NULL;
	}
	return in;
}

void dirwalk_cache_head(FILE *out, const char *magic, int dir, size_t count)
{
	char times[64];

	dirwalk_times(dir, times);
	fprintf(out, "%s %s %zu\n", magic, times, count);
}

int dirwalk_open_regular(int dfd, const char *name, const struct stat *seen, struct stat *st)
{
	struct stat got;
	int fd, ret;

	fd = dirwalk_openat(dfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
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
