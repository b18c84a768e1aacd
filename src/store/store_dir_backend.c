/* The directory backend assembled: its operations (reading in
 * store_dir.c, writing in store_version.c) and its opening. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/log.h"
#include "keyfs/store.h"

#include "store_dir.h"

static void dir_destroy(void *priv)
{
	struct dir_store *d = priv;

	sdir_walks_save(d);
	sdir_walks_close(d);
	close(d->dfd);
	pthread_mutex_destroy(&d->write_lock);
	free(d);
}

/* For the store watcher (storewatch.h): <dir>/<keyset>/ is the layout. */
static int dir_tree_fd(void *priv)
{
	return ((struct dir_store *)priv)->dfd;
}

static const struct store_ops dir_ops = {
	.list = sdir_list,
	.stamp = sdir_walks_stamp,
	.why = sdir_why,
	.read = sdir_read,
	.read_stamped = sdir_read_stamped,
	.put = sdir_put,
	.versions = sdir_versions,
	.activate = sdir_activate,
	.tree_fd = dir_tree_fd,
	.settled = sdir_walks_settled,
	.destroy = dir_destroy,
};

/* Keys move between the store and the state directory by rename. */
static int same_filesystem(int a, int b, const char *dir)
{
	struct stat sa, sb;

	if (fstat(a, &sa) || fstat(b, &sb))
		return -errno;
	if (sa.st_dev == sb.st_dev)
		return 0;
	log_msg(LOG_ERR, "store %s: the state directory must be on the store's filesystem", dir);
	return -EXDEV;
}

int store_dir_open(const char *dir, const struct state *state, struct store *s)
{
	struct dir_store *d;
	int ret;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->sfd = state->fd;
	d->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->dfd < 0) {
		ret = -errno;
		free(d);
		return ret;
	}
	ret = same_filesystem(d->dfd, d->sfd, dir);
	if (ret) {
		close(d->dfd);
		free(d);
		return ret;
	}
	pthread_mutex_init(&d->write_lock, NULL);
	sdir_clean_tmp(d);
	sdir_walks_init(d);
	s->ops = &dir_ops;
	s->priv = d;
	return 0;
}
