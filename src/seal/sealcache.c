/* The sealed-export cache: its life cycle, opens of exports, password
 * changes, and the queue of stale keysets for the worker pool (see
 * sealcache.h; attributes are in sealattr.c, the entry table and the
 * sealing of one keyset in sealentry.c and seal.c). */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keyfs/dirwalk.h"
#include "keyfs/log.h"
#include "keyfs/meta.h"

#include "sealcache_priv.h"
#include "sealfile.h"

/* ---- life cycle ---- */

int sealcache_new(struct sealcache **out, struct store *st, const struct state *state,
		  struct vault *v, const struct config *c)
{
	struct sealcache *sc;
	int ret;

	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return -ENOMEM;
	sc->cfd = sc->pfd = sc->index_fd = -1;
	sc->st = st;
	sc->state = state;
	sc->v = v;
	sc->cfg = c;
	pthread_mutex_init(&sc->lock, NULL);
	pthread_mutex_init(&sc->pw_lock, NULL);
	pthread_cond_init(&sc->changed, NULL);
	pthread_mutex_init(&sc->mark_lock, NULL);
	sc->cfd = openat(state->fd, STATE_CACHE, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	/* Names only, no stat and no header read: the headers are read
	 * when a keyset is first asked for, so a mount over a hundred
	 * thousand cached keysets is ready at once. */
	ret = sc->cfd < 0 ? -errno : sc_known_load(sc);
	if (ret) {
		sealcache_free(sc);
		return ret;
	}
	*out = sc;
	return 0;
}

void sealcache_set_provider(struct sealcache *sc, void (*ask)(void *arg, const char *keyset),
			    void *arg)
{
	sc->ask = ask;
	sc->ask_arg = arg;
}

void sealcache_set_observer(struct sealcache *sc, void (*fn)(void *arg, const char *keyset),
			    void *arg)
{
	sc->changed_fn = fn;
	sc->changed_arg = arg;
}

void sealcache_set_fresh(struct sealcache *sc, struct fresh *f)
{
	sc->fresh = f;
}

void sealcache_set_signer(struct sealcache *sc, const struct bundle_signer *s)
{
	sc->signer = s;
}

void sealcache_free(struct sealcache *sc)
{
	struct entry *e, *next;
	size_t pos = 0;

	if (!sc)
		return;
	if (sc->scan_running) {
		pthread_mutex_lock(&sc->lock);
		sc->stopping = true;
		pthread_cond_broadcast(&sc->changed);
		pthread_mutex_unlock(&sc->lock);
		pthread_join(sc->scan, NULL);
	}
	pool_free(sc->pool); /* before the entries it works on */
	if (sc->cfd >= 0) {
		seal_sync(sc);
		sc_index_write(sc);
	}
	sc_index_close(sc);
	recipients_put(sc->rcp);
	for (e = sc_entry_next(sc, &pos, NULL); e; e = next) {
		next = sc_entry_next(sc, &pos, e);
		free(e->why);
		free(e->ahead);
		free(e);
	}
	htab_free(&sc->entries);
	sc_known_drop(sc);
	sc_marks_free(sc);
	if (sc->cfd >= 0)
		close(sc->cfd);
	if (sc->pfd >= 0)
		close(sc->pfd);
	pthread_cond_destroy(&sc->changed);
	pthread_mutex_destroy(&sc->mark_lock);
	pthread_mutex_destroy(&sc->pw_lock);
	pthread_mutex_destroy(&sc->lock);
	free(sc);
}

/* ---- the sealing queue ---- */

static void work(void *arg, struct pool_item *item)
{
	struct entry *e = (struct entry *)((char *)item - offsetof(struct entry, item));
	struct sealcache *sc = arg;
	bool mine;

	pthread_mutex_lock(&sc->lock);
	mine = !e->sealing; /* else an open seals it right now */
	e->sealing = true;
	pthread_mutex_unlock(&sc->lock);
	if (mine)
		seal_entry(sc, e);
}

/* Each scrypt at logN takes 128 * r * 2^logN bytes (r = 8): as many
 * workers as cores, but no more than the memory budget allows. */
static size_t worker_count(const struct config *c)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	size_t per = (size_t)128 * 8 << c->work_factor;
	size_t n = c->seal_memory / per;

	if (cores < 1)
		cores = 1;
	if (n > (size_t)cores)
		n = (size_t)cores;
	return n ? n : 1;
}

static bool queue_listed(struct sealcache *sc, char **names, size_t n);

/* The first scan is done (whole: it looked at every keyset listed):
 * forgets what was known at start, and removes the marks of keysets
 * found exportable or, after a whole scan, gone. */
static void known_done(struct sealcache *sc, bool whole)
{
	struct entry *e;
	size_t i;

	pthread_mutex_lock(&sc->mark_lock);
	pthread_mutex_lock(&sc->lock);
	sc_known_drop(sc);
	/* backwards: sc_mark_set() removes from sc->marks */
	for (i = sc->nmarks; i-- > 0;) {
		e = sc_entry_find(sc, sc->marks[i]);
		if ((!e && whole) || (e && e->examined && !e->bad)) {
			pthread_mutex_unlock(&sc->lock);
			sc_mark_set(sc, sc->marks[i], false);
			pthread_mutex_lock(&sc->lock);
		}
	}
	pthread_mutex_unlock(&sc->lock);
	pthread_mutex_unlock(&sc->mark_lock);
}

/* Queues the keysets that had no seal at start, without a walk: no
 * stamp makes them current. The seal reads each anyway. The lock is
 * taken per keyset, as a listing at the mount waits on it. */
static void queue_unsealed(struct sealcache *sc, char **names, size_t n)
{
	struct entry *e;
	bool stop = false;
	size_t i;

	for (i = 0; i < n && !stop; i++) {
		pthread_mutex_lock(&sc->lock);
		stop = sc->stopping;
		e = !stop && sc_known_absent(sc, names[i]) ? sc_entry_get(sc, names[i]) : NULL;
		if (e && !e->bad && sc_pwid_for(sc, e))
			sc_entry_enqueue(sc, e);
		pthread_mutex_unlock(&sc->lock);
	}
}

/* Whether to go on: the store is ready (sealcache_await_store()) and no
 * stop came meanwhile. if_sealed: waits only if the cache held seals at
 * start (or cannot say), as an empty cache has nothing to compare. */
static bool store_awaited(struct sealcache *sc, bool if_sealed)
{
	bool go;

	pthread_mutex_lock(&sc->lock);
	while (sc->await_store && !sc->store_ready && !sc->stopping &&
	       (!if_sealed || !sc->listed || sc->sealed.n))
		pthread_cond_wait(&sc->changed, &sc->lock);
	go = !sc->stopping;
	pthread_mutex_unlock(&sc->lock);
	return go;
}

static void *first_scan(void *arg)
{
	struct sealcache *sc = arg;
	char **names;
	size_t n;

	thread_name("keyfs-scan");
	thread_background();
	/* Listing the store now too would slow a first listing of export/,
	 * and a cache with seals waits for the watcher anyway. */
	if (!store_awaited(sc, true) || sc->st->ops->list(sc->st->priv, &names, &n)) {
		known_done(sc, false);
		return NULL;
	}
	queue_unsealed(sc, names, n);
	known_done(sc, store_awaited(sc, false) && queue_listed(sc, names, n));
	store_list_free(names);
	/* The scan's name lists are freed, but glibc keeps their pages: on
	 * a large store, megabytes an idle daemon would hold. */
	malloc_trim(0);
	return NULL;
}

void sealcache_await_store(struct sealcache *sc)
{
	sc->await_store = true;
}

void sealcache_store_ready(struct sealcache *sc)
{
	pthread_mutex_lock(&sc->lock);
	sc->store_ready = true;
	pthread_cond_broadcast(&sc->changed);
	pthread_mutex_unlock(&sc->lock);
}

int sealcache_start(struct sealcache *sc)
{
	struct pool *p;
	int ret;

	ret = pool_new(&p, worker_count(sc->cfg), work, sc);
	if (ret)
		return ret;
	pthread_mutex_lock(&sc->lock);
	sc->pool = p;
	pthread_mutex_unlock(&sc->lock);
	log_msg(LOG_INFO, "sealing with %zu background worker(s), work factor %d", pool_workers(p),
		sc->cfg->work_factor);
	/* A password from a file or credential may be waiting already: the
	 * stale keysets are looked for in the background, as this may walk
	 * every keyset. */
	ret = -pthread_create(&sc->scan, NULL, first_scan, sc);
	sc->scan_running = !ret;
	return ret;
}

/* Queues the stale keysets of names; whether it looked at each. */
static bool queue_listed(struct sealcache *sc, char **names, size_t n)
{
	struct entry *e;
	uint64_t stamp;
	bool current;
	size_t i;
	int ret;

	store_batch(sc->st, true);
	for (i = 0; i < n; i++) {
		e = sc_entry_lock(sc, names[i], &stamp, &ret);
		if (!e) {
			/* passing trouble is not the keyset's, as in attr_report() */
			if (ret != -ENOMEM && ret != -EAGAIN)
				sc_note_problem(sc, names[i], ret, NULL);
			continue;
		}
		if (sc->stopping) {
			pthread_mutex_unlock(&sc->lock);
			break;
		}
		current = sc_entry_current(sc, e, stamp);
		/* No due time is noted: nobody was told one yet, so the seal
		 * notes its own when it is planned (sc_due_time()), and a
		 * cold store's keysets do not each hold an ahead meanwhile. */
		if (!e->bad && sc_pwid_for(sc, e) && !current) {
			sc_entry_enqueue(sc, e);
		} else if (!e->bad && current && sc_importable(sc, e->len)) {
			e->examined = true; /* what an attribute request would find */
		}
		pthread_mutex_unlock(&sc->lock);
	}
	store_batch(sc->st, false);
	return i == n;
}

void sealcache_queue_stale(struct sealcache *sc)
{
	char **names;
	size_t n;

	if (sc->st->ops->list(sc->st->priv, &names, &n))
		return;
	queue_listed(sc, names, n);
	store_list_free(names);
}

void sealcache_progress(struct sealcache *sc, size_t *workers, size_t *pending)
{
	size_t queued = 0, running = 0;

	*workers = pool_workers(sc->pool);
	if (sc->pool)
		pool_counts(sc->pool, &queued, &running);
	*pending = queued + running;
}

/* ---- password changes ---- */

/* A keyset's own password may have been dropped ("forget --keyset"):
 * read the mark again for those that had one. Caller holds sc->lock. */
static void recheck_own(struct sealcache *sc)
{
	struct entry *e;
	size_t pos = 0;

	for (e = sc_entry_next(sc, &pos, NULL); e; e = sc_entry_next(sc, &pos, e))
		if (e->own_pw)
			e->own_pw = meta_own_password(sc->state, e->name);
}

int sealcache_password_changed(struct sealcache *sc)
{
	struct sealkey_ids ids;
	struct entry *e;
	size_t i;
	int ret;

	pthread_mutex_lock(&sc->pw_lock);
	ret = sealkey_find(sc->state->fd, sc->v, sc->cfg->work_factor, &ids);
	if (ret)
		goto out;
	pthread_mutex_lock(&sc->lock);
	recheck_own(sc);
	for (i = 0; i < ids.nown; i++)
		if ((e = sc_entry_get(sc, ids.own[i].name)))
			e->own_pw = true;
	sc->ids = ids;
	pthread_cond_broadcast(&sc->changed);
	pthread_mutex_unlock(&sc->lock);
	sealcache_queue_stale(sc);
	if (sc->changed_fn)
		sc->changed_fn(sc->changed_arg, NULL);
out:
	pthread_mutex_unlock(&sc->pw_lock);
	return ret;
}

/* ---- recipients ---- */

void sealcache_set_recipients(struct sealcache *sc, struct recipients *r)
{
	struct recipients *old;
	bool started;

	pthread_mutex_lock(&sc->lock);
	old = sc->rcp;
	sc->rcp = r;
	started = sc->pool != NULL;
	pthread_cond_broadcast(&sc->changed);
	pthread_mutex_unlock(&sc->lock);
	recipients_put(old); /* seals under way keep their own reference */
	if (started) /* else sealcache_start() queues what is stale */
		sealcache_queue_stale(sc);
	if (sc->changed_fn)
		sc->changed_fn(sc->changed_arg, NULL);
}

/* ---- opens ---- */

/* Opens the cache file if it holds the seal of stamp under the current
 * key. Caller holds sc->lock; 1 if not (yet) current. */
static int open_current(struct sealcache *sc, struct entry *e, uint64_t stamp, struct seal **out)
{
	uint8_t pwid[VERIFIER_ID_LEN];
	struct sealfile h;
	struct seal *s;

	if (!sc_entry_current(sc, e, stamp))
		return 1;
	memcpy(pwid, sc_pwid_for(sc, e), VERIFIER_ID_LEN);
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = dirwalk_open_regular(sc->cfd, e->name, NULL, NULL);
	/* The header of the file actually opened decides, not the entry. */
	if (s->fd < 0 || sealfile_read(s->fd, &h) || strcmp(h.name, e->name) || h.stamp != stamp ||
	    h.logn != sc_logn_for(sc, e) || memcmp(h.pwid, pwid, VERIFIER_ID_LEN) ||
	    sealfile_check(s->fd, &h)) {
		if (s->fd >= 0)
			close(s->fd);
		free(s);
		/* a new seal, with a new time: the old one's was served */
		e->cached = false;
		if (e->ahead)
			e->ahead->due_at = 0;
		return 1;
	}
	s->off = (off_t)h.off;
	s->len = h.len;
	s->sealed_at = h.sealed_at;
	*out = s;
	return 0;
}

static int wait_changed(struct sealcache *sc, time_t deadline)
{
	struct timespec ts = { deadline, 0 };

	return pthread_cond_timedwait(&sc->changed, &sc->lock, &ts) == ETIMEDOUT ? -ETIMEDOUT : 0;
}

/* One try at opening; 1 to try again. Takes and drops sc->lock. */
static int open_once(struct sealcache *sc, const char *name, time_t deadline, struct seal **out)
{
	struct entry *e;
	uint64_t stamp, gen;
	int ret;

	gen = vault_generation(sc->v); /* before sc->lock: see sealcache_priv.h */
	e = sc_entry_lock(sc, name, &stamp, &ret);
	if (!e)
		return ret;
	if ((sc->ids.gen != gen && !sc_rset_for(sc, e)) || e->sealing) {
		/* the verifier or another thread is at work: wait */
		ret = wait_changed(sc, deadline);
		ret = ret ? ret : 1;
	} else if (!sc_pwid_for(sc, e)) {
		ret = -ENOKEY; /* its own password is not given yet */
	} else {
		ret = open_current(sc, e, stamp, out);
		if (ret == 1) {
			/* ahead of the queue: seal it here and now */
			if (sc->pool)
				pool_take(sc->pool, &e->item);
			e->sealing = true;
			pthread_mutex_unlock(&sc->lock);
			ret = seal_entry(sc, e);
			return ret ? ret : 1;
		}
	}
	pthread_mutex_unlock(&sc->lock);
	return ret;
}

/* Whether name is sealed to recipients: no password is asked for. */
static bool by_recipients(struct sealcache *sc, const char *name)
{
	struct entry *e;
	bool yes;

	pthread_mutex_lock(&sc->lock);
	e = sc_entry_get(sc, name);
	yes = e && sc_rset_for(sc, e);
	pthread_mutex_unlock(&sc->lock);
	return yes;
}

int sealcache_open(struct sealcache *sc, const char *name, struct seal **out)
{
	time_t deadline = time(NULL) + OPEN_WAIT_SECONDS;
	bool pw = !by_recipients(sc, name);
	int ret;

	/* A password provider, e.g. the agent's (sources_need()): it
	 * returns at once when the keyset has a password, else waits
	 * briefly for an answer asked on another thread; never does I/O. */
	if (pw && sc->ask)
		sc->ask(sc->ask_arg, name);
	do {
		if (pw && !vault_has_for(sc->v, name))
			return -ENOKEY;
		if (time(NULL) >= deadline)
			return -ETIMEDOUT;
		ret = open_once(sc, name, deadline, out);
	} while (ret == 1);
	return ret;
}

ssize_t sealcache_read(const struct seal *s, char *buf, size_t size, off_t off)
{
	ssize_t n;

	if (off < 0 || (size_t)off >= s->len)
		return 0;
	if (size > s->len - (size_t)off)
		size = s->len - (size_t)off;
	n = pread(s->fd, buf, size, s->off + off);
	return n < 0 ? -errno : n;
}

void sealcache_read_to_end(struct sealcache *sc, const char *name, const struct seal *s,
			   pid_t pid, uid_t uid)
{
	if (sc->fresh)
		fresh_read_to_end(sc->fresh, name, s->sealed_at, pid, uid);
}

void sealcache_put(struct seal *s)
{
	if (!s)
		return;
	close(s->fd);
	free(s);
}
