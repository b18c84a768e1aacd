/* keyfs-agent's listening socket (see agent_socket.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "keyfs/log.h"

#include "agent_socket.h"

/* The socket's directory keeps other users away from the socket even on
 * systems that ignore socket permissions: ours alone, 0700. */
static int check_dir(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;
	struct stat st;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (mkdir(dir, 0700) && errno != EEXIST) {
		log_msg(LOG_ERR, "%s: %m", dir);
		return -errno;
	}
	if (lstat(dir, &st)) {
		log_msg(LOG_ERR, "%s: %m", dir);
		return -errno;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
		log_msg(LOG_ERR, "%s: must be a directory of uid %u with mode 0700 (is uid %u, mode %04o)",
			dir, (unsigned)geteuid(), (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/* A socket file left by an agent that died is removed; a live agent's is
 * not (connect() tells the two apart). */
static int clear_stale(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, ret;

	if (lstat(path, &st))
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		log_msg(LOG_ERR, "%s: exists and is not a socket", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
	close(fd);
	if (ret == -ECONNREFUSED) {
		log_msg(LOG_NOTICE, "%s: removing a stale socket", path);
		return unlink(path) ? -errno : 0;
	}
	if (ret && ret != -EAGAIN) {
		log_msg(LOG_ERR, "%s: %s", path, strerror(-ret));
		return ret;
	}
	log_msg(LOG_ERR, "%s: another agent is listening", path);
	return -EADDRINUSE;
}

int agent_socket_open(struct agent_socket *a)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int ret;

	ret = check_dir(a->path);
	if (!ret)
		ret = clear_stale(a->path);
	if (ret)
		return ret;
	a->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (a->listen_fd < 0)
		return -errno;
	memcpy(sa.sun_path, a->path, strlen(a->path) + 1);
	/* the umask, not a later chmod, so the socket is never open to others */
	old = umask(0177);
	ret = bind(a->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (ret) {
		log_msg(LOG_ERR, "%s: %m", a->path);
		return -errno;
	}
	if (listen(a->listen_fd, 16) || stat(a->path, &st)) {
		ret = -errno;
		log_msg(LOG_ERR, "%s: %m", a->path);
		unlink(a->path);
		return ret;
	}
	a->dev = st.st_dev;
	a->ino = st.st_ino;
	return 0;
}

void agent_socket_remove(const struct agent_socket *a)
{
	struct stat st;

	if (!stat(a->path, &st) && st.st_dev == a->dev && st.st_ino == a->ino)
		unlink(a->path);
}

