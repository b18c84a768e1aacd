/* replace: a file is old or new, never half; readers of the old keep it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/replace.h"

#include "tap.h"

static int put(int dfd, const char *path, const char *text, int (*fn)(int, const char *,
						const struct iovec *, int))
{
	return fn(dfd, path, &(struct iovec){ (void *)text, strlen(text) }, 1);
}

static bool holds(int dfd, const char *path, const char *text)
{
	char buf[64] = "";
	ssize_t n;
	int fd;

	fd = openat(dfd, path, O_RDONLY);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n == (ssize_t)strlen(text) && !memcmp(buf, text, (size_t)n);
}

/* Names in dir other than . and .. */
static int entries(int dfd, const char *dir)
{
	struct dirent *d;
	DIR *dp;
	int n = 0, fd;

	fd = openat(dfd, dir, O_RDONLY | O_DIRECTORY);
	dp = fd < 0 ? NULL : fdopendir(fd);
	if (!dp)
		return -1;
	while ((d = readdir(dp)))
		n += strcmp(d->d_name, ".") && strcmp(d->d_name, "..");
	closedir(dp);
	return n;
}

static void test_new_and_replaced(int dfd, int (*fn)(int, const char *, const struct iovec *, int),
				  const char *how)
{
	struct stat a, b;
	char old[8] = "";
	int fd;

	tap_ok(!put(dfd, "sub/f", "first", fn) && holds(dfd, "sub/f", "first"), "%s: a new file", how);
	tap_ok(!fstatat(dfd, "sub/f", &a, 0) && (a.st_mode & 07777) == 0600, "%s: mode 0600", how);
	fd = openat(dfd, "sub/f", O_RDONLY);
	tap_ok(!put(dfd, "sub/f", "second!", fn) && holds(dfd, "sub/f", "second!"),
	       "%s: replaced", how);
	tap_ok(!fstatat(dfd, "sub/f", &b, 0) && b.st_ino != a.st_ino, "%s: by another inode", how);
	tap_ok(pread(fd, old, sizeof(old) - 1, 0) == 5 && !strcmp(old, "first"),
	       "%s: a reader of the old file keeps it", how);
	close(fd);
	tap_ok(entries(dfd, "sub") == 1, "%s: no temporary is left", how);
	unlinkat(dfd, "sub/f", 0);
}

static void test_mode_and_leftover(int dfd)
{
	struct stat st;

	tap_ok(!replace_file_mode(dfd, "m", 0644, &(struct iovec){ (void *)"x", 1 }, 1) &&
	       !fstatat(dfd, "m", &st, 0) && (st.st_mode & 07777) == 0644,
	       "replace_file_mode sets the mode whatever the umask");
	/* a crash's leftover temporary does not stop the next replace */
	close(openat(dfd, "sub/.g.tmp", O_WRONLY | O_CREAT, 0600));
	tap_ok(!put(dfd, "sub/g", "one", replace_file) && !put(dfd, "sub/g", "two", replace_file) &&
	       holds(dfd, "sub/g", "two"), "replaced beside a leftover temporary");
	tap_ok(replace_is_temp(".g.tmp") && !replace_is_temp("g.tmp") &&
	       !replace_is_temp(".tmp"), "temporaries are told apart");
	tap_ok(put(dfd, "nodir/x", "x", replace_file) < 0, "a missing directory is an error");
}

/* A write cut short (here by RLIMIT_FSIZE, as a full disk would) goes
 * on and ends in the error that stopped it, not a stale errno; a file
 * being replaced keeps its old content. */
static void test_short_write(int dfd)
{
	static const char text[] = "0123456789abcdefghij";
	struct rlimit was, cap = { 10, 0 };
	struct stat st;
	int fd, ret;

	tap_ok(put(dfd, "capped", "old\n", replace_file) == 0, "a file to replace");
	fd = openat(dfd, "short", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &was);
	cap.rlim_max = was.rlim_max;
	setrlimit(RLIMIT_FSIZE, &cap);
	errno = 0;
	ret = replace_write_all(fd, text, sizeof(text) - 1);
	tap_ok(ret == -EFBIG, "a write cut short ends in its error (%d)", ret);
	tap_ok(fstat(fd, &st) == 0 && st.st_size == 10, "after the part that fit");
	tap_ok(put(dfd, "new", text, replace_file_unsynced) == -EFBIG &&
	       fstatat(dfd, "new", &st, 0) && errno == ENOENT,
	       "an unsynced new file that does not fit is not left behind");
	errno = 0;
	ret = put(dfd, "capped", text, replace_file);
	setrlimit(RLIMIT_FSIZE, &was);
	signal(SIGXFSZ, SIG_DFL);
	close(fd);
	tap_ok(ret == -EFBIG && holds(dfd, "capped", "old\n"),
	       "a replacement that does not fit leaves the old file (%d)", ret);
	tap_ok(replace_write_all(-1, text, 1) == -EBADF && replace_write_all(-1, text, 0) == 0,
	       "errors as they are; nothing to write is no error");
}

int main(void)
{
	char dir[] = "/tmp/keyfs-replace.XXXXXX";
	char cmd[64];
	int dfd;

	umask(077);
	if (!mkdtemp(dir) || (dfd = open(dir, O_RDONLY | O_DIRECTORY)) < 0 || mkdirat(dfd, "sub", 0700))
		return tap_ok(false, "temporary directory"), tap_done();
	test_new_and_replaced(dfd, replace_file, "synced");
	test_new_and_replaced(dfd, replace_file_unsynced, "unsynced");
	test_mode_and_leftover(dfd);
	test_short_write(dfd);
	close(dfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		tap_ok(false, "cleanup");
	return tap_done();
}
