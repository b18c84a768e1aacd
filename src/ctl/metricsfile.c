/* The metrics file writer (see metricsfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keyfs/log.h"
#include "keyfs/metrics.h"
#include "keyfs/metricsfile.h"
#include "keyfs/replace.h"

struct metricsfile {
	int dfd;			/* the file's directory */
	char name[NAME_MAX + 1];
	int (*render)(void *arg, char **text, size_t *len);
	void *arg;
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool poked, stop;		/* protected by lock */
	char *last;			/* the text the file holds, without its
					 * rendered time; the thread's */
	size_t last_len;
	struct timespec written;	/* CLOCK_MONOTONIC; the thread's */
	int last_err;			/* logged once per change */
};

int metricsfile_new(struct metricsfile **out, const char *path,
		    int (*render)(void *arg, char **text, size_t *len), void *arg)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	struct metricsfile *mf;
	pthread_condattr_t ca;
	int ret;

	if (!slash || !slash[1] || strlen(slash + 1) > NAME_MAX)
		return -EINVAL;
	snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	mf = calloc(1, sizeof(*mf));
	if (!mf)
		return -ENOMEM;
	mf->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mf->dfd < 0) {
		ret = -errno;
		free(mf);
		return ret;
	}
	snprintf(mf->name, sizeof(mf->name), "%s", slash + 1);
	mf->render = render;
	mf->arg = arg;
	pthread_mutex_init(&mf->lock, NULL);
	/* A clock set back must not hold off the rescan for as long. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&mf->wake, &ca);
	pthread_condattr_destroy(&ca);
	*out = mf;
	return 0;
}

/* text followed by the time of rendering: the file of a daemon that is
 * gone keeps its last numbers, and this tells how old they are.
 * `keyfsctl metrics` has no such line: it is live by being read. */
static int with_time(const char *text, size_t len, char **out, size_t *out_len)
{
	FILE *f = open_memstream(out, out_len);

	if (!f)
		return -ENOMEM;
	fwrite(text, 1, len, f);
	metrics_family(f, METRICSFILE_RENDERED, "gauge",
		       "When keyfs last wrote this file (Unix time): old means keyfs is not running");
	metrics_sample(f, METRICSFILE_RENDERED, NULL, (double)time(NULL));
	if (fclose(f)) {
		free(*out);
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Renders and, if the text changed or the rendered time is due for a
 * refresh, replaces the file. The metrics hold no secret and
 * node_exporter runs as another user: mode 0644. */
static void write_once(struct metricsfile *mf)
{
	char *text = NULL, *stamped = NULL;
	size_t len = 0, stamped_len = 0;
	struct timespec now;
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ret = mf->render(mf->arg, &text, &len);
	if (!ret && mf->last && len == mf->last_len && !memcmp(text, mf->last, len) &&
	    now.tv_sec - mf->written.tv_sec < METRICSFILE_RESCAN / 2) {
		free(text);
		return;
	}
	if (!ret)
		ret = with_time(text, len, &stamped, &stamped_len);
	if (!ret)
		ret = replace_file_mode(mf->dfd, mf->name, 0644,
					&(struct iovec){ stamped, stamped_len }, 1);
	free(stamped);
	if (ret && ret != mf->last_err)
		log_msg(LOG_WARNING, "metrics file %s: %s", mf->name, strerror(-ret));
	else if (!ret && mf->last_err)
		log_msg(LOG_NOTICE, "metrics file %s: written again", mf->name);
	mf->last_err = ret;
	if (ret) {
		free(text);
		return;
	}
	free(mf->last);
	mf->last = text;
	mf->last_len = len;
	mf->written = now;
}

static void *run(void *arg)
{
	struct metricsfile *mf = arg;
	struct timespec until;
	bool stop;

	for (;;) {
		write_once(mf);
		/* at most one write a second, however often poked */
		sleep(1);
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += METRICSFILE_RESCAN - 1;
		pthread_mutex_lock(&mf->lock);
		while (!mf->poked && !mf->stop)
			if (pthread_cond_timedwait(&mf->wake, &mf->lock, &until) == ETIMEDOUT)
				break;
		mf->poked = false;
		stop = mf->stop;
		pthread_mutex_unlock(&mf->lock);
		if (stop)
			break;
	}
	return NULL;
}

int metricsfile_start(struct metricsfile *mf)
{
	int ret = pthread_create(&mf->thread, NULL, run, mf);

	mf->running = !ret;
	return -ret;
}

void metricsfile_poke(struct metricsfile *mf)
{
	if (!mf)
		return;
	pthread_mutex_lock(&mf->lock);
	mf->poked = true;
	pthread_cond_signal(&mf->wake);
	pthread_mutex_unlock(&mf->lock);
}

void metricsfile_stop(struct metricsfile *mf)
{
	if (!mf || !mf->running)
		return;
	pthread_mutex_lock(&mf->lock);
	mf->stop = true;
	pthread_cond_signal(&mf->wake);
	pthread_mutex_unlock(&mf->lock);
	pthread_join(mf->thread, NULL);
	mf->running = false;
}

void metricsfile_free(struct metricsfile *mf)
{
	if (!mf)
		return;
	metricsfile_stop(mf);
	close(mf->dfd);
	free(mf->last);
	pthread_cond_destroy(&mf->wake);
	pthread_mutex_destroy(&mf->lock);
	free(mf);
}
