/* Opening keyfs' state directory safely (see state.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/log.h"
#include "keyfs/meta.h"
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
