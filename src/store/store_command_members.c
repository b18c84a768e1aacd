/* A command keyset's last good members, kept in keyfs' state directory
 * (store_command.c says where), and the runs of backup_command that
 * replace them. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "keyfs/keytree.h"
#include "keyfs/log.h"
#include "keyfs/replace.h"

#include "command_run.h"
#include "store_command_priv.h"

static int path_of(const char *name, const char *suffix, char buf[static PATH_MAX])
{
	return snprintf(buf, PATH_MAX, DIR_COMMANDS "/%s%s", name, suffix) >= PATH_MAX ?
	       -ENAMETOOLONG : 0;
}

/* The last good members' directory, or -ENODATA when there is none. */
static int open_members(struct command_store *cs, const struct cmd_keyset *k)
{
	char path[PATH_MAX];
	int fd;

	if (path_of(k->cfg.name, "", path))
		return -ENAMETOOLONG;
	fd = openat(cs->sfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? (errno == ENOENT ? -ENODATA : -errno) : fd;
}

/* The members' directory as served: -ENODATA (why says so) while the
 * last run failed or none ran yet. */
int cmd_open_served(struct command_store *cs, const struct cmd_keyset *k)
{
	int ret;

	pthread_mutex_lock(&cs->lock);
	ret = k->error;
	pthread_mutex_unlock(&cs->lock);
	return ret ? ret : open_members(cs, k);
}

/* Reads the members in fd (or returns the error fd is), closing it. */
static int read_members(int fd, const char *name, struct keyset *ks)
{
	int ret;

	if (fd < 0)
		return fd;
	ret = keytree_read(fd, name, ks, NULL, 0);
	close(fd);
	return ret;
}

int cmd_members_read(struct command_store *cs, struct cmd_keyset *k, struct keyset *ks)
{
	return read_members(cmd_open_served(cs, k), k->cfg.name, ks);
}

/* Replaces the members by ks: written beside, then exchanged. */
static int members_replace(struct command_store *cs, const struct cmd_keyset *k,
			   const struct keyset *ks)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	int fd, ret;

	if (path_of(k->cfg.name, "", path) || path_of(".new-", k->cfg.name, tmp))
		return -ENAMETOOLONG;
	keytree_remove(cs->sfd, tmp);
	if (mkdirat(cs->sfd, tmp, 0700))
		return -errno;
	fd = openat(cs->sfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	ret = keytree_write(fd, ks);
	if (ret == 0 && fsync(fd))
		ret = -errno;
	close(fd);
	if (ret)
		goto out;
	if (renameat2(cs->sfd, tmp, cs->sfd, path, RENAME_EXCHANGE) &&
	    (errno != ENOENT || renameat(cs->sfd, tmp, cs->sfd, path)))
		ret = -errno;
	if (ret == 0)
		replace_dir_fsync(cs->sfd, DIR_COMMANDS);
out:
	keytree_remove(cs->sfd, tmp);
	return ret;
}

/* NAME.failed holds why, or is gone when why is NULL. */
static void failure_note(struct command_store *cs, const struct cmd_keyset *k, const char *why)
{
	char path[PATH_MAX];
	struct iovec iov;

	if (path_of(k->cfg.name, ".failed", path))
		return;
	if (!why) {
		if (unlinkat(cs->sfd, path, 0) == 0)
			replace_dir_fsync(cs->sfd, DIR_COMMANDS);
		return;
	}
	iov = (struct iovec){ (void *)why, strlen(why) };
	replace_file(cs->sfd, path, &iov, 1);
}

void cmd_failure_load(struct command_store *cs, struct cmd_keyset *k)
{
	char path[PATH_MAX];
	ssize_t n = -1;
	int fd;

	if (path_of(k->cfg.name, ".failed", path))
		return;
	fd = openat(cs->sfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, k->why, sizeof(k->why) - 1);
		close(fd);
	}
	if (n >= 0) {
		k->why[n] = '\0';
		k->error = -ENODATA;
		return;
	}
	fd = open_members(cs, k);
	if (fd >= 0) {
		close(fd);
		return;
	}
	snprintf(k->why, sizeof(k->why), "backup_command has not run yet");
	k->error = -ENODATA;
}

long long cmd_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* Runs k's backup_command and takes its members when they changed.
 * Tells the listener when the members or the trouble changed. */
int cmd_refresh(struct command_store *cs, struct cmd_keyset *k)
{
	struct keyset ks = { 0 }, cur = { 0 };
	char why[COMMAND_WHY_MAX];
	struct hook_result res;
	bool changed = false, was;
	int ret;

	pthread_mutex_lock(&k->run_lock);
	ret = command_backup(&k->cfg, cs->tmpfd, &ks, &res, why, sizeof(why));
	if (ret == 0) {
		if (cmd_members_read_any(cs, k, &cur) || !keyset_equal(&cur, &ks)) {
			ret = members_replace(cs, k, &ks);
			changed = ret == 0;
			if (ret)
				snprintf(why, sizeof(why), "keeping its output: %s", strerror(-ret));
		}
	}
	/* anything but a size limit is the program's: nothing to back up */
	if (ret && ret != -EFBIG && ret != -E2BIG)
		ret = -ENODATA;
	failure_note(cs, k, ret ? why : NULL);
	pthread_mutex_lock(&cs->lock);
	was = k->error != 0;
	k->error = ret;
	k->last = res;
	if (ret)
		snprintf(k->why, sizeof(k->why), "%s", why);
	k->next = cmd_now() + (k->cfg.refresh ? k->cfg.refresh : CONFIG_REFRESH_DEFAULT);
	pthread_mutex_unlock(&cs->lock);
	pthread_mutex_unlock(&k->run_lock);
	if (ret)
		log_msg(LOG_WARNING, "keyset %s: %s", k->cfg.name, why);
	else if (changed)
		log_msg(LOG_NOTICE, "keyset %s: backup_command gave %zu member%s, changed since "
			"its last run", k->cfg.name, ks.n, ks.n == 1 ? "" : "s");
	else if (was)
		log_msg(LOG_NOTICE, "keyset %s: backup_command works again", k->cfg.name);
	keyset_clear(&ks);
	keyset_clear(&cur);
	/* a failure again may have new words: the status asks anew */
	if ((changed || was || ret) && cs->changed)
		cs->changed(cs->changed_arg, k->cfg.name);
	return ret;
}

int cmd_members_read_any(struct command_store *cs, const struct cmd_keyset *k, struct keyset *ks)
{
	return read_members(open_members(cs, k), k->cfg.name, ks);
}

