/* Backup freshness records (see fresh.h): the table and the writer
 * thread; the journal they are kept in is fresh_log.c, and reading what
 * earlier releases kept fresh_snapshot.c and load_all() here. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keyfs/dirwalk.h"
#include "keyfs/fresh.h"
#include "keyfs/htab.h"
#include "keyfs/keyset.h"
#include "keyfs/log.h"
#include "keyfs/pool.h"
#include "keyfs/replace.h"
#include "keyfs/store.h"

#include "fresh_priv.h"

/* Seal times: from a work factor of 10 (tests, milliseconds) to 22
 * (minutes) on slow machines. */
static const double seal_bounds[] = { 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };

/* Reads name's record file, as earlier releases wrote one per keyset,
 * into the table. Caller holds f->lock. */
static struct fresh_rec *load_rec(struct fresh *f, const char *name, uint64_t h)
{
	char text[RECORD_MAX];
	struct fresh_rec *r;
	ssize_t n;
	int fd;

	fd = dirwalk_open_regular(f->dfd, name, NULL, NULL);
	if (fd < 0)
		return NULL;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	text[n > 0 ? n : 0] = '\0';
	r = fr_rec_add(f, name, h);
	if (r && fr_parse(f, r, text)) {
		log_msg(LOG_WARNING, "backup record of \"%s\" is damaged: it counts as never backed up",
			name);
		htab_del(&f->recs, &r->h);
		free(r);
		r = NULL;
	}
	return r;
}

/* Caller holds f->lock. */
static struct fresh_rec *rec_get(struct fresh *f, const char *name, bool create)
{
	uint64_t h = htab_hash(name);
	struct fresh_rec *r;

	while (f->reading)
		pthread_cond_wait(&f->read, &f->lock);
	r = (struct fresh_rec *)htab_find(&f->recs, h, fr_same_name, name);
	if (!r && !f->loaded && keyset_name_valid(name))
		r = load_rec(f, name, h);
	if (!r && create)
		r = fr_rec_add(f, name, h);
	return r;
}

struct found {
	char **names;
	size_t n;
};

static int find_one(int dirfd, const char *name, mode_t type, void *arg)
{
	struct found *l = arg;

	(void)type;
	if (replace_is_temp(name))
		unlinkat(dirfd, name, 0); /* left by a crash; only this thread writes */
	else if (keyset_name_valid(name))
		store_names_add(&l->names, &l->n, name);
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Without a journal: reads every record file of earlier releases not
 * asked for already. In name order, as the reports walk the keysets:
 * records made one after the other lie close together, and a status of
 * a hundred thousand keysets misses the processor's cache far less. */
static void load_all(struct fresh *f)
{
	struct found l = { NULL, 0 };
	size_t i;

	if (fr_snapshot_read(f))
		goto out;
	dirwalk_types(f->dfd, ".", find_one, &l);
	if (l.n)
		qsort(l.names, l.n, sizeof(*l.names), cmp_names);
	for (i = 0; i < l.n; i++) {
		pthread_mutex_lock(&f->lock);
		rec_get(f, l.names[i], false);
		pthread_mutex_unlock(&f->lock);
	}
	store_names_free(l.names, l.n);
out:
	pthread_mutex_lock(&f->lock);
	f->loaded = true;
	pthread_mutex_unlock(&f->lock);
}

static void *writer_run(void *arg);

int fresh_new(struct fresh **out, const struct state *s)
{
	pthread_condattr_t ca;
	struct fresh *f;
	int ret;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	pthread_mutex_init(&f->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&f->read, NULL);
	metrics_histogram_init(&f->seals, seal_bounds, sizeof(seal_bounds) / sizeof(seal_bounds[0]));
	strcpy(f->comms[0], "?");
	f->ncomms = 1;
	f->sfd = s->fd;
	f->lfd = -1;
	f->dfd = openat(s->fd, STATE_FRESH, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (f->dfd < 0) {
		ret = -errno;
		fresh_free(f);
		return ret;
	}
	f->reading = true;
	ret = -pthread_create(&f->writer, NULL, writer_run, f);
	if (ret) {
		fresh_free(f);
		return ret;
	}
	f->running = true;
	*out = f;
	return 0;
}

void fresh_free(struct fresh *f)
{
	struct fresh_rec *r, *next;
	size_t pos = 0;

	if (!f)
		return;
	if (f->running) {
		/* the writer writes what is still dirty before it ends */
		pthread_mutex_lock(&f->lock);
		f->stop = true;
		pthread_cond_signal(&f->wake);
		pthread_mutex_unlock(&f->lock);
		pthread_join(f->writer, NULL);
	}
	for (r = (struct fresh_rec *)htab_next(&f->recs, &pos, NULL); r; r = next) {
		next = (struct fresh_rec *)htab_next(&f->recs, &pos, &r->h);
		free(r);
	}
	htab_free(&f->recs);
	if (f->dfd >= 0)
		close(f->dfd);
	if (f->lfd >= 0)
		close(f->lfd);
	pthread_cond_destroy(&f->wake);
	pthread_cond_destroy(&f->read);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

void fresh_set_listener(struct fresh *f, void (*fn)(void *arg), void *arg)
{
	f->fn = fn;
	f->arg = arg;
}

/* The record of r changed: the writer will write it. Caller holds
 * f->lock. Only the first change since the writer's last round wakes
 * it: in its pause between rounds it would only wait again, and a
 * backup reading exports one after another would wake it for each. */
static void mark_dirty(struct fresh *f, struct fresh_rec *r)
{
	r->dirty = true;
	if (!f->pending)
		pthread_cond_signal(&f->wake);
	f->pending = true;
}

/* Records copied and written per round: a first seal of every
 * keyset makes all of them dirty at once, and the copies of a hundred
 * thousand would weigh 11 MiB. */
#define FLUSH_BATCH 1024

/* Copies up to FLUSH_BATCH dirty records, from bucket *pos on, and marks
 * them clean. Caller holds f->lock. */
static size_t take_dirty(struct fresh *f, struct rec_copy *copies, size_t *pos)
{
	struct fresh_rec *r;
	size_t n = 0;

	for (r = (struct fresh_rec *)htab_next(&f->recs, pos, NULL); r && n < FLUSH_BATCH;
	     r = (struct fresh_rec *)htab_next(&f->recs, pos, &r->h)) {
		if (!r->dirty)
			continue;
		copies[n].name = r->name;
		copies[n].stamp = r->stamp;
		copies[n].key = r->key;
		fr_rec_info(f, r, &copies[n++].i);
		r->dirty = false;
	}
	return n;
}

/* Appends every dirty record as it is now to the journal, in rounds:
 * copies taken under f->lock, lines written without it. Only the writer
 * thread writes, so the last line of a keyset holds its newest record.
 * They are made durable with one fdatasync() at the end. A record once
 * listed is never removed (only a damaged one, as it is read), so a
 * round goes on from the bucket the last one stopped in, unless the
 * table grew meanwhile. */
static void flush(struct fresh *f)
{
	struct rec_copy *copies = malloc(FLUSH_BATCH * sizeof(*copies));
	size_t n, pos = 0, nb, written = 0;
	int ret;

	if (f->lfd < 0 || f->torn)
		fr_log_compact(f);
	if (!copies || f->lfd < 0) {
		free(copies);
		return; /* the records stay dirty: written at the next wake */
	}
	pthread_mutex_lock(&f->lock);
	f->pending = false;
	nb = f->recs.nb;
	do {
		if (f->recs.nb != nb) {
			pos = 0;
			nb = f->recs.nb;
		}
		n = take_dirty(f, copies, &pos);
		pthread_mutex_unlock(&f->lock);
		/* after an append that failed, the journal is written whole
		 * below instead */
		ret = n && !f->torn ? fr_log_append(f, copies, n) : 0;
		if (ret)
			log_msg(LOG_WARNING, "saving backup records: %s", strerror(-ret));
		written += n;
		pthread_mutex_lock(&f->lock);
	} while (n == FLUSH_BATCH);
	n = f->recs.n;
	pthread_mutex_unlock(&f->lock);
	if (written && fdatasync(f->lfd))
		log_msg(LOG_WARNING, "saving backup records: fdatasync: %m");
	free(copies);
	if (fr_log_due(f, n))
		fr_log_compact(f);
}

static void *writer_run(void *arg)
{
	struct fresh *f = arg;
	struct timespec until;
	bool stop, loaded;

	thread_name("keyfs-record");
	/* the journal first, at the daemon's priority: requests wait */
	loaded = fr_log_read(f);
	pthread_mutex_lock(&f->lock);
	f->loaded = loaded;
	f->reading = false;
	pthread_cond_broadcast(&f->read);
	pthread_mutex_unlock(&f->lock);
	/* earlier releases' files and the writes: waited for by no reader */
	thread_background();
	if (!loaded) {
		load_all(f);
		fr_log_compact(f);
		/* the journal holds them now, and is read instead */
		if (f->lfd >= 0)
			unlinkat(f->sfd, SNAPSHOT, 0);
	} else if (f->torn) {
		fr_log_compact(f); /* before a line goes after the torn one */
	}
	for (;;) {
		pthread_mutex_lock(&f->lock);
		while (!f->pending && !f->stop)
			pthread_cond_wait(&f->wake, &f->lock);
		stop = f->stop;
		pthread_mutex_unlock(&f->lock);
		flush(f);
		if (stop) {
			/* the next start reads a line per keyset */
			if (f->logged || f->torn)
				fr_log_compact(f);
			break;
		}
		/* at most one round of writes a second, unless stopping */
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += 1;
		pthread_mutex_lock(&f->lock);
		while (!f->stop)
			if (pthread_cond_timedwait(&f->wake, &f->lock, &until) == ETIMEDOUT)
				break;
		pthread_mutex_unlock(&f->lock);
	}
	return NULL;
}

static void tell(struct fresh *f)
{
	if (f->fn)
		f->fn(f->arg);
}

int fresh_observe(struct fresh *f, struct fresh_rec **ref, const char *name, uint64_t stamp,
		  uint64_t key, time_t sealed_at, bool locked, struct fresh_info *out)
{
	bool dirty = false, news;
	struct fresh_rec *r;

	pthread_mutex_lock(&f->lock);
	r = ref && *ref ? *ref : rec_get(f, name, true);
	if (!r) {
		pthread_mutex_unlock(&f->lock);
		return -ENOMEM;
	}
	if (ref)
		*ref = r;
	news = r->locked != locked;
	r->locked = locked;
	/* A key seen for the first time (after a locked start) is no change:
	 * only another key than the one recorded is. */
	if (!r->seen || r->stamp != stamp || (key && r->key && r->key != key)) {
		/* never seen: as old as its seal, if it has one */
		if (!r->seen)
			r->changed_at = sealed_at ? sealed_at : time(NULL);
		else if (!sealed_at || sealed_at != r->sealed_at)
			r->changed_at = time(NULL);
		r->seen = true;
		r->stamp = stamp;
		dirty = true;
	}
	if (key && r->key != key) {
		r->key = key;
		dirty = true;
	}
	if (r->sealed_at != sealed_at) {
		r->sealed_at = sealed_at;
		dirty = true;
	}
	if (dirty)
		mark_dirty(f, r);
	if (out)
		fr_rec_info(f, r, out);
	pthread_mutex_unlock(&f->lock);
	if (dirty || news)
		tell(f);
	return 0;
}

void fresh_same_content(struct fresh *f, const char *name, uint64_t old, uint64_t stamp)
{
	struct fresh_rec *r;

	pthread_mutex_lock(&f->lock);
	/* Only a record at old: one at another version has seen something
	 * else since, and fresh_observe() decides about it. Its key and
	 * times stay as they are; the next observation updates them. */
	r = rec_get(f, name, false);
	if (r && r->seen && r->stamp == old && old != stamp) {
		r->stamp = stamp;
		mark_dirty(f, r);
	}
	pthread_mutex_unlock(&f->lock);
}

/* The name of pid's program, for telling which backup tool read it. */
static void comm_of(pid_t pid, char comm[static FRESH_COMM_MAX])
{
	char path[64];
	ssize_t n = -1;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, comm, FRESH_COMM_MAX - 1);
		close(fd);
	}
	comm[n > 0 ? n : 0] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
	fr_clean_comm(comm);
	if (!comm[0])
		strcpy(comm, "?");
}

void fresh_read_to_end(struct fresh *f, const char *name, time_t sealed_at, pid_t pid, uid_t uid)
{
	char comm[FRESH_COMM_MAX];
	struct fresh_rec *r;

	comm_of(pid, comm);
	pthread_mutex_lock(&f->lock);
	r = rec_get(f, name, true);
	if (r) {
		r->backup_at = time(NULL);
		r->backup_sealed = sealed_at;
		r->backup_uid = uid;
		r->comm = fr_comm_id(f, comm);
		mark_dirty(f, r);
	}
	pthread_mutex_unlock(&f->lock);
	if (r)
		tell(f);
}

void fresh_seal_done(struct fresh *f, const char *name, int err, double seconds)
{
	/* locked or gone: no failure, yet no seal whose time counts */
	int shown = err == -ENOKEY || err == -ENOENT ? 0 : err;
	struct fresh_rec *r;

	pthread_mutex_lock(&f->lock);
	/* a keyset that is gone gets no record made for it */
	r = rec_get(f, name, err != -ENOENT);
	if (r)
		r->seal_error = shown;
	if (!err)
		metrics_histogram_observe(&f->seals, seconds);
	pthread_mutex_unlock(&f->lock);
	tell(f);
}

int fresh_get(struct fresh *f, const char *name, struct fresh_info *i)
{
	struct fresh_rec *r;

	pthread_mutex_lock(&f->lock);
	r = rec_get(f, name, false);
	if (r)
		fr_rec_info(f, r, i);
	pthread_mutex_unlock(&f->lock);
	return r ? 0 : -ENOENT;
}

enum fresh_state fresh_state_of(const struct fresh_info *i)
{
	if (!i->backup_at)
		return FRESH_NEVER;
	return i->sealed_at && i->backup_sealed == i->sealed_at ? FRESH_BACKED_UP : FRESH_CHANGED;
}

const char *fresh_state_name(enum fresh_state s)
{
	static const char *const names[] = {
		[FRESH_NEVER] = "never", [FRESH_CHANGED] = "changed", [FRESH_BACKED_UP] = "backed_up",
	};

	return names[s];
}

void fresh_seal_durations(struct fresh *f, struct histogram *h)
{
	pthread_mutex_lock(&f->lock);
	*h = f->seals;
	pthread_mutex_unlock(&f->lock);
}
