/* Backup freshness records (see fresh.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

#define RECORD_MAX 256
/* Every record, written at a clean stop (see snapshot_write()). */
#define SNAPSHOT "fresh.all"
#define SNAPSHOT_TMP ".fresh.all.tmp"
/* Distinct program names kept for the reports; later ones show as "?". */
#define COMMS_MAX 256

/* One per keyset, a hundred thousand on a large store: the fields of
 * struct fresh_info, but the program name by its number in f->comms (a
 * few tools read every export), the flags together and the name sized to
 * fit. */
struct fresh_rec {
	struct hnode h;		/* in f->recs */
	uint64_t stamp, key;
	time_t changed_at, sealed_at, backup_at, backup_sealed;
	uid_t backup_uid;
	int seal_error;
	uint8_t comm;		/* f->comms[comm]; 0 is "?" */
	bool locked;
	bool seen;		/* stamp and key above are known */
	bool dirty;		/* its file is behind; protected by f->lock */
	char name[];
};

/* What the writer writes of a record, copied under f->lock. */
struct rec_copy {
	const char *name;
	uint64_t stamp, key;
	struct fresh_info i;
};

/* Seal times: from a work factor of 10 (tests, milliseconds) to 22
 * (minutes) on slow machines. */
static const double seal_bounds[] = { 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };

struct fresh {
	int dfd;			/* <state>/fresh */
	int sfd;			/* <state>, for SNAPSHOT; not owned */
	pthread_mutex_t lock;		/* the table and the histogram */
	struct htab recs;		/* struct fresh_rec by name */
	struct histogram seals;
	char comms[COMMS_MAX][FRESH_COMM_MAX];	/* [0] is "?" */
	unsigned ncomms;
	void (*fn)(void *arg);		/* set before threads start: read unlocked */
	void *arg;
	/* The writer thread: record files are written (and fsynced) by it,
	 * never in a FUSE request, which would wait on the disk. */
	pthread_t writer;
	bool running;
	pthread_cond_t wake;		/* CLOCK_MONOTONIC */
	bool pending, stop;		/* protected by lock */
	/* Every record file is in recs: until then a record is read from
	 * its file when first asked for, while the writer thread reads the
	 * rest, so the mount does not wait for a hundred thousand files. */
	bool loaded;			/* protected by lock */
};

/* A process name as status and metrics may show it: printable ASCII. */
static void clean_comm(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

/* The number of program name comm (printable) in f->comms, added if new;
 * 0 ("?") once the table is full. Caller holds f->lock. */
static uint8_t comm_id(struct fresh *f, const char *comm)
{
	unsigned k;

	for (k = 0; k < f->ncomms; k++)
		if (!strcmp(f->comms[k], comm))
			return (uint8_t)k;
	if (f->ncomms == COMMS_MAX)
		return 0;
	snprintf(f->comms[f->ncomms], FRESH_COMM_MAX, "%s", comm);
	return (uint8_t)f->ncomms++;
}

/* Caller holds f->lock. */
static void rec_info(const struct fresh *f, const struct fresh_rec *r, struct fresh_info *i)
{
	*i = (struct fresh_info){ .changed_at = r->changed_at, .sealed_at = r->sealed_at,
				  .backup_at = r->backup_at, .backup_sealed = r->backup_sealed,
				  .backup_uid = r->backup_uid, .seal_error = r->seal_error,
				  .locked = r->locked };
	memcpy(i->backup_comm, f->comms[r->comm], FRESH_COMM_MAX);
}

/* Caller holds f->lock. */
static int parse(struct fresh *f, struct fresh_rec *r, const char *text)
{
	char comm[FRESH_COMM_MAX];
	long long changed, sealed, at, bsealed;
	unsigned uid;
	int n = 0;

	if (sscanf(text, "keyfs-fresh 1 %" SCNx64 " %" SCNx64 " %lld %lld %lld %lld %u %n",
		   &r->stamp, &r->key, &changed, &sealed, &at, &bsealed, &uid, &n) < 7 || !n)
		return -EINVAL;
	snprintf(comm, sizeof(comm), "%.*s", (int)strcspn(text + n, "\n"), text + n);
	clean_comm(comm);
	r->comm = comm[0] ? comm_id(f, comm) : 0;
	r->seen = true;
	r->changed_at = (time_t)changed;
	r->sealed_at = (time_t)sealed;
	r->backup_at = (time_t)at;
	r->backup_sealed = (time_t)bsealed;
	r->backup_uid = (uid_t)uid;
	return 0;
}

/* A record's file: one line, which parse() reads. */
static int format_rec(const struct rec_copy *r, char text[static RECORD_MAX])
{
	return snprintf(text, RECORD_MAX, "keyfs-fresh 1 %016" PRIx64 " %016" PRIx64
			" %lld %lld %lld %lld %u %s\n", r->stamp, r->key,
			(long long)r->i.changed_at, (long long)r->i.sealed_at,
			(long long)r->i.backup_at, (long long)r->i.backup_sealed,
			(unsigned)r->i.backup_uid, r->i.backup_comm);
}

static struct fresh_rec *rec_add(struct fresh *f, const char *name, uint64_t h)
{
	_Static_assert(offsetof(struct fresh_rec, h) == 0, "htab_add_named() returns the hnode");
	return htab_add_named(&f->recs, sizeof(struct fresh_rec), offsetof(struct fresh_rec, name),
			      name, h);
}

/* Reads name's record file into the table. Caller holds f->lock. */
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
	r = rec_add(f, name, h);
	if (r && parse(f, r, text)) {
		log_msg(LOG_WARNING, "backup record of \"%s\" is damaged: it counts as never backed up",
			name);
		htab_del(&f->recs, &r->h);
		free(r);
		r = NULL;
	}
	return r;
}

static bool same_name(const struct hnode *h, const void *name)
{
	return !strcmp(((const struct fresh_rec *)h)->name, name);
}

/* Caller holds f->lock. */
static struct fresh_rec *rec_get(struct fresh *f, const char *name, bool create)
{
	uint64_t h = htab_hash(name);
	struct fresh_rec *r;

	r = (struct fresh_rec *)htab_find(&f->recs, h, same_name, name);
	if (!r && !f->loaded && keyset_name_valid(name))
		r = load_rec(f, name, h);
	if (!r && create)
		r = rec_add(f, name, h);
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

/* ---- the snapshot: every record in one file ----
 *
 * Written at a clean stop, after the last record file, with the times of
 * fresh/ then: the next start reads it in one go instead of a file per
 * keyset, but only if fresh/ has not changed since. Writing a record
 * renames a file into fresh/, which makes its times later, whoever
 * writes it (a keyfs that knows no snapshot too); a crash leaves records
 * written after the snapshot, and so a snapshot that is not read. */

static int cmp_recs(const void *a, const void *b)
{
	return strcmp((*(struct fresh_rec *const *)a)->name, (*(struct fresh_rec *const *)b)->name);
}

static void dir_times(int dfd, char buf[static 64])
{
	struct stat st;

	if (fstat(dfd, &st))
		snprintf(buf, 64, "?");
	else
		snprintf(buf, 64, "%lld.%09ld %lld.%09ld", (long long)st.st_mtim.tv_sec,
			 st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
}

/* In name order (see load_all()). Caller holds f->lock: at the stop,
 * nobody else asks for records any more. */
static int snapshot_put(struct fresh *f, FILE *out)
{
	struct fresh_rec **all, *r;
	char text[RECORD_MAX], times[64];
	struct rec_copy c;
	size_t n = 0, i, pos = 0;

	all = malloc((f->recs.n ? f->recs.n : 1) * sizeof(*all));
	if (!all)
		return -ENOMEM;
	for (r = (struct fresh_rec *)htab_next(&f->recs, &pos, NULL); r;
	     r = (struct fresh_rec *)htab_next(&f->recs, &pos, &r->h))
		if (r->seen)
			all[n++] = r;
	qsort(all, n, sizeof(*all), cmp_recs);
	dir_times(f->dfd, times);
	fprintf(out, "keyfs-fresh-all 1 %s %zu\n", times, n);
	for (i = 0; i < n; i++) {
		c = (struct rec_copy){ .name = all[i]->name, .stamp = all[i]->stamp, .key = all[i]->key };
		rec_info(f, all[i], &c.i);
		format_rec(&c, text);
		fprintf(out, "%s %s", all[i]->name, text);
	}
	fprintf(out, "end %zu\n", n);
	free(all);
	return 0;
}

static void snapshot_write(struct fresh *f)
{
	FILE *out;
	int fd, ret;

	fd = openat(f->sfd, SNAPSHOT_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	out = fd < 0 ? NULL : fdopen(fd, "w");
	if (!out) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		goto out;
	}
	pthread_mutex_lock(&f->lock);
	ret = f->loaded ? snapshot_put(f, out) : -EAGAIN;
	pthread_mutex_unlock(&f->lock);
	if (fflush(out) || fsync(fileno(out)))
		ret = ret ? ret : -errno;
	fclose(out);
	if (!ret && renameat(f->sfd, SNAPSHOT_TMP, f->sfd, SNAPSHOT))
		ret = -errno;
out:
	if (ret && ret != -EAGAIN) /* -EAGAIN: stopped before every record was read */
		log_msg(LOG_WARNING, "saving backup records in %s: %s", SNAPSHOT, strerror(-ret));
	if (ret)
		unlinkat(f->sfd, SNAPSHOT_TMP, 0);
}

/* One line of the snapshot: the name, then the record file's line. */
static int snapshot_line(struct fresh *f, char *line)
{
	char *sp = strchr(line, ' ');
	struct fresh_rec *r;
	uint64_t h;

	if (!sp)
		return -EINVAL;
	*sp = '\0';
	if (!keyset_name_valid(line))
		return -EINVAL;
	h = htab_hash(line);
	pthread_mutex_lock(&f->lock);
	/* one read from its file meanwhile, for a request, is as new */
	r = (struct fresh_rec *)htab_find(&f->recs, h, same_name, line);
	if (!r) {
		r = rec_add(f, line, h);
		if (r && parse(f, r, sp + 1)) {
			htab_del(&f->recs, &r->h);
			free(r);
			r = NULL;
		}
	}
	pthread_mutex_unlock(&f->lock);
	return r ? 0 : -EINVAL;
}

/* Whether every record was read from the snapshot. */
static bool snapshot_read(struct fresh *f)
{
	char times[64], want[64], *line = NULL;
	size_t cap = 0, n = 0, count = 0, end = 0;
	bool whole = false;
	FILE *in;
	int fd;

	fd = openat(f->sfd, SNAPSHOT, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	in = fd < 0 ? NULL : fdopen(fd, "r");
	if (!in) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	dir_times(f->dfd, want);
	if (getline(&line, &cap, in) < 0 ||
	    sscanf(line, "keyfs-fresh-all 1 %63[0-9.] %*[0-9.] %zu", times, &count) != 2 ||
	    strncmp(line + strlen("keyfs-fresh-all 1 "), want, strlen(want)))
		goto out;
	while (getline(&line, &cap, in) > 0) {
		if (sscanf(line, "end %zu", &end) == 1) {
			whole = end == count && n == count;
			break;
		}
		if (snapshot_line(f, line))
			break;
		n++;
	}
out:
	free(line);
	fclose(in);
	return whole;
}

/* Reads every record file not asked for already. In name order, as the
 * reports walk the keysets: records made one after the other lie close
 * together, and a status of a hundred thousand keysets misses the
 * processor's cache far less. */
static void load_all(struct fresh *f)
{
	struct found l = { NULL, 0 };
	size_t i;

	if (snapshot_read(f))
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
	metrics_histogram_init(&f->seals, seal_bounds, sizeof(seal_bounds) / sizeof(seal_bounds[0]));
	strcpy(f->comms[0], "?");
	f->ncomms = 1;
	f->sfd = s->fd;
	f->dfd = openat(s->fd, STATE_FRESH, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (f->dfd < 0) {
		ret = -errno;
		fresh_free(f);
		return ret;
	}
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
	pthread_cond_destroy(&f->wake);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

void fresh_set_listener(struct fresh *f, void (*fn)(void *arg), void *arg)
{
	f->fn = fn;
	f->arg = arg;
}

/* The record of r changed: the writer will write it. Caller holds
 * f->lock. */
static void mark_dirty(struct fresh *f, struct fresh_rec *r)
{
	r->dirty = true;
	f->pending = true;
	pthread_cond_signal(&f->wake);
}

static void write_rec(struct fresh *f, const struct rec_copy *r)
{
	char text[RECORD_MAX];
	int len, ret;

	len = format_rec(r, text);
	ret = replace_file_unsynced(f->dfd, r->name, &(struct iovec){ text, (size_t)len }, 1);
	if (ret)
		log_msg(LOG_WARNING, "saving the backup record of \"%s\": %s", r->name,
			strerror(-ret));
}

/* Writes every dirty record as it is now: copies taken under f->lock,
 * files written without it. Only the writer thread writes, so the last
 * file written holds the newest record. A round's files are made durable
 * with one syncfs(), not two fsyncs each: a record torn by a crash is
 * read as none, and the keyset counts as not backed up. */
static void flush(struct fresh *f)
{
	struct rec_copy *copies = NULL;
	struct fresh_rec *r;
	size_t n = 0, cap = 0, i, pos = 0;

	pthread_mutex_lock(&f->lock);
	f->pending = false;
	for (r = (struct fresh_rec *)htab_next(&f->recs, &pos, NULL); r;
	     r = (struct fresh_rec *)htab_next(&f->recs, &pos, &r->h)) {
		if (!r->dirty)
			continue;
		if (n == cap) {
			size_t c = cap ? 2 * cap : 16;
			struct rec_copy *a = realloc(copies, c * sizeof(*copies));

			if (!a) {
				f->pending = true; /* the rest next time */
				goto out;
			}
			copies = a;
			cap = c;
		}
		copies[n].name = r->name;
		copies[n].stamp = r->stamp;
		copies[n].key = r->key;
		rec_info(f, r, &copies[n++].i);
		r->dirty = false;
	}
out:
	pthread_mutex_unlock(&f->lock);
	for (i = 0; i < n; i++)
		write_rec(f, &copies[i]);
	if (n && syncfs(f->dfd))
		log_msg(LOG_WARNING, "saving backup records: syncfs: %m");
	free(copies);
}

static void *writer_run(void *arg)
{
	struct fresh *f = arg;
	struct timespec until;
	bool stop;

	/* reading every record at start, then writing them: neither is
	 * waited for by a reader */
	thread_background();
	load_all(f);
	for (;;) {
		pthread_mutex_lock(&f->lock);
		while (!f->pending && !f->stop)
			pthread_cond_wait(&f->wake, &f->lock);
		stop = f->stop;
		pthread_mutex_unlock(&f->lock);
		flush(f);
		if (stop) {
			snapshot_write(f);
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
		rec_info(f, r, out);
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
	clean_comm(comm);
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
		r->comm = comm_id(f, comm);
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
		rec_info(f, r, i);
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
