/* Making a live keyset's missing path (live_path.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/keytree.h"
#include "keyfs/log.h"

#include "live_path.h"

/* The deepest directory of path that exists: its fd, and in *have the
 * length of the prefix naming it ("" for /). */
static int open_deepest(char *buf, size_t len, size_t *have)
{
	int fd;

	for (;;) {
		fd = open(len ? buf : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0 || errno != ENOENT || !len)
			break;
		while (len && buf[len] != '/')
			len--;
		buf[len] = '\0';
	}
	*have = len;
	return fd < 0 ? -errno : fd;
}

/* Component name of path made in dfd; last: the keyset's own. */
static int make_one(int dfd, const char *keyset, const char *path, const char *name, bool last,
		    unsigned *made)
{
	int fd;

	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	if (mkdirat(dfd, name, 0700) == 0) {
		if (fsync(dfd))
			return -errno;
		++*made;
		log_msg(LOG_NOTICE, "keyset %s: made missing directory %s%s", keyset, path,
			last ? " (its recorded mode and owner follow the restore)" : " (root, 0755)");
	} else if (errno != EEXIST) {
		return -errno;
	}
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (!last && fchmod(fd, 0755)) {
		close(fd);
		return -errno;
	}
	return fd;
}

int live_path_make(const char *keyset, const char *path, const struct keyset *ks, unsigned *made,
		   char *why, size_t size)
{
	char buf[PATH_MAX], full[PATH_MAX], name[NAME_MAX + 1];
	size_t len = strlen(path), have, i, end;
	int fd, sub = 0;

	*made = 0;
	*why = '\0';
	if (path[0] != '/' || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, path, len + 1);
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
	memcpy(full, buf, len + 1);
	fd = open_deepest(buf, len, &have);
	if (fd < 0 || have == len)
		return fd;
	sub = keytree_check_above(fd, ks, have ? buf : "/", why, size);
	for (i = have; sub == 0 && i < len; i = end) {
		while (full[i] == '/')
			i++;
		for (end = i; end < len && full[end] != '/'; end++)
			;
		if (end - i > NAME_MAX) {
			sub = -ENAMETOOLONG;
			break;
		}
		memcpy(name, full + i, end - i);
		name[end - i] = '\0';
		memcpy(buf, full, end);
		buf[end] = '\0';
		sub = make_one(fd, keyset, buf, name, end == len, made);
		close(fd);
		fd = sub;
		sub = sub < 0 ? sub : 0;
	}
	if (sub && fd >= 0)
		close(fd);
	return sub ? sub : fd;
}
