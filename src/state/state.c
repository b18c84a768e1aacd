/* Opening keyfs' state directory safely (see state.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keyfs/log.h"
#include "keyfs/meta.h"
#include "keyfs/replace.h"
#include "keyfs/state.h"

static int make_subdirs(int fd)
{
	static const char *const dirs[] = { STATE_META, STATE_VERSIONS, STATE_TMP, STATE_CACHE,
						 STATE_FRESH };
	size_t i;

	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (mkdirat(fd, dirs[i], 0700) && errno != EEXIST)
			return -errno;
	return 0;
}

/* Who holds the lock, from OWNER_FILE: "PID MOUNTPOINT". */
static void owner_read(int fd, char *buf, size_t size)
{
	ssize_t n = -1;
	int ofd;

	ofd = openat(fd, STATE_OWNER, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (ofd >= 0) {
		n = read(ofd, buf, size - 1);
		close(ofd);
	}
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

/* One keyfs per state directory: two would lose each other's backup
 * records and seal over each other. One that is stopping (unmounted, its
 * records still being written) is waited for, LOCK_WAIT_S at most. */
static int lock(struct state *s)
{
	char owner[PATH_MAX + 32], *mnt;
	struct timespec tick = { 0, 100 * 1000 * 1000 };
	int i;

	for (i = 0; flock(s->fd, LOCK_EX | LOCK_NB); i++) {
		if (errno != EWOULDBLOCK)
			return -errno;
		if (i == 0)
			log_msg(LOG_NOTICE, "state directory %s is in use by another keyfs: waiting up "
				"to %d s for it to stop", s->path, LOCK_WAIT_S);
		if (i == LOCK_WAIT_S * 10) {
			owner_read(s->fd, owner, sizeof(owner));
			mnt = strchr(owner, ' ');
			if (mnt)
				*mnt++ = '\0';
			log_msg(LOG_ERR, "state directory %s is served by keyfs pid %s (mounted on %s)",
				s->path, *owner ? owner : "?", mnt ? mnt : "?");
			return -EBUSY;
		}
		nanosleep(&tick, NULL);
	}
	return 0;
}

int state_owner_write(struct state *s, const char *mountpoint)
{
	char text[PATH_MAX + 32];
	int fd, len, ret;

	len = snprintf(text, sizeof(text), "%d %s\n", (int)getpid(), mountpoint);
	fd = openat(s->fd, STATE_OWNER, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	ret = replace_write_all(fd, text, (size_t)len);
	close(fd);
	return ret;
}

int state_open(struct state *s, const char *path)
{
	struct stat st;
	int ret;

	s->fd = -1;
	s->meta = NULL;
	if (snprintf(s->path, sizeof(s->path), "%s", path) >= (int)sizeof(s->path))
		return -ENAMETOOLONG;
	if (mkdir(path, 0700) && errno != EEXIST)
		return -errno;
	s->fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s->fd < 0) {
		ret = errno == ELOOP || errno == ENOTDIR ? -ENOTDIR : -errno;
		log_msg(LOG_ERR, "state directory %s %s", path,
			ret == -ENOTDIR ? "is a symlink or not a directory: refused" : strerror(-ret));
		return ret;
	}
	ret = fstat(s->fd, &st) ? -errno : 0;
	if (!ret && (st.st_uid != geteuid() || (st.st_mode & 022))) {
		log_msg(LOG_ERR, "state directory %s must belong to uid %u and not be writable by "
			"group or others", path, (unsigned)geteuid());
		ret = -EPERM;
	}
	if (!ret)
		ret = lock(s);
	if (!ret)
		ret = make_subdirs(s->fd);
	if (!ret)
		ret = meta_load(s);
	if (ret)
		state_close(s);
	return ret;
}

void state_close(struct state *s)
{
	meta_unload(s);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

int state_default_path(const char *store, char *buf, size_t size)
{
	return snprintf(buf, size, "%s/.keyfs", store) >= (int)size ? -ENAMETOOLONG : 0;
}
