/* Sealing work: the queue, the background workers, and sealing one
 * keyset into the cache (locking in sealcache_priv.h). */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keyfs/age.h"
#include "keyfs/armor.h"
#include "keyfs/bundle.h"
#include "keyfs/log.h"
#include "keyfs/sealfile.h"
#include "sealcache_priv.h"

/* The time the seal of (stamp, current password) counts as made: when it
 * became due, so the attributes reported before the seal stay true after
 * it. Caller holds sc->lock. */
time_t due_time(struct sealcache *sc, struct entry *e, uint64_t stamp)
{
	static const uint8_t none[VERIFIER_ID_LEN];
	const uint8_t *id = pwid_for(sc, e);

	if (!id)
		id = none;
	/* A reseal at another work factor has the same size: only a new
	 * time tells rsync's quick check that the bytes changed. */
	if (e->due_stamp != stamp || memcmp(e->due_pwid, id, VERIFIER_ID_LEN) ||
	    e->due_logn != sc->cfg->work_factor || !e->due_at) {
		e->due_stamp = stamp;
		memcpy(e->due_pwid, id, VERIFIER_ID_LEN);
		e->due_logn = sc->cfg->work_factor;
		e->due_at = time(NULL);
		/* never the time of the seal it replaces */
		if (e->cached && e->due_at <= e->sealed_at)
			e->due_at = e->sealed_at + 1;
	}
	return e->due_at;
}

/* What seal_one() is to make, decided under sc->lock: 1 if the seal is
 * current already. */
static int seal_plan(struct sealcache *sc, const char *name, struct sealfile *h, uint64_t *gen)
{
	struct entry *e;
	int ret = 0;

	pthread_mutex_lock(&sc->lock);
	e = entry_get(sc, name);
	if (!e) {
		ret = -ENOMEM;
	} else if (!pwid_for(sc, e)) {
		ret = -ENOKEY;
	} else if (entry_current(sc, e, h->stamp)) {
		ret = 1; /* someone else sealed it meanwhile */
	} else {
		snprintf(h->name, sizeof(h->name), "%s", name);
		memcpy(h->pwid, pwid_for(sc, e), VERIFIER_ID_LEN);
		h->logn = sc->cfg->work_factor;
		h->sealed_at = due_time(sc, e, h->stamp);
		*gen = sc->pwid_gen;
	}
	pthread_mutex_unlock(&sc->lock);
	return ret;
}

/* Seals the plaintext under the keyset's password, if it is still the one
 * the plan's id names (the vault generation has not moved): else -EAGAIN.
 * The vault read lock is held for the scrypt and nothing else is taken
 * meanwhile (see sealcache_priv.h). */
static int seal_under(struct sealcache *sc, const char *name, uint64_t want, const uint8_t *tar,
		      size_t tar_len, uint8_t **bin, size_t *bin_len)
{
	struct age_pass pass;
	uint64_t gen;
	int ret;

	ret = vault_read_for(sc->v, name, &pass, &gen);
	if (ret)
		return ret;
	ret = gen == want ? age_seal(tar, tar_len, &pass, sc->cfg->work_factor, bin, bin_len) : -EAGAIN;
	vault_read_end(sc->v);
	return ret;
}

/* Seals one keyset into the cache unless its seal is current. -EAGAIN if
 * the password changed under us (the caller tries again). */
static int seal_one(struct sealcache *sc, const char *name)
{
	uint8_t *tar = NULL, *bin = NULL;
	size_t tar_len = 0, bin_len;
	struct sealfile h = { 0 };
	struct keyset ks = { 0 };
	struct entry *e;
	uint64_t gen = 0;
	char *pem = NULL;
	int ret;

	ret = export_stamp(sc, name, &h.stamp);
	if (ret)
		return ret;
	ret = read_keyset(sc, name, &ks, true);
	if (ret)
		goto out;
	ret = bundle_pack(&ks, &tar, &tar_len);
	if (!ret)
		ret = seal_plan(sc, name, &h, &gen);
	if (!ret)
		ret = seal_under(sc, name, gen, tar, tar_len, &bin, &bin_len);
	if (ret)
		goto out;
	ret = armor_encode(bin, bin_len, &pem, &h.len);
	if (!ret)
		ret = sealfile_write(sc->cfd, name, &h, pem);
	if (ret)
		goto out;
	pthread_mutex_lock(&sc->lock);
	e = entry_get(sc, name);
	e->cached = true;
	e->stamp = h.stamp;
	memcpy(e->pwid, h.pwid, VERIFIER_ID_LEN);
	e->logn = h.logn;
	e->sealed_at = h.sealed_at;
	e->len = h.len;
	pthread_mutex_unlock(&sc->lock);
	log_msg(LOG_INFO, "sealed keyset \"%s\"", name);
out:
	free(pem);
	free(bin);
	if (tar)
		sodium_free(tar);
	keyset_clear(&ks);
	return ret > 0 ? 0 : ret;
}

/* Caller holds sc->lock. */
void enqueue(struct sealcache *sc, struct entry *e)
{
	if (e->queued || e->sealing || !sc->nworkers)
		return;
	e->queued = true;
	e->qnext = NULL;
	if (sc->qtail)
		sc->qtail->qnext = e;
	else
		sc->qhead = e;
	sc->qtail = e;
	pthread_cond_signal(&sc->work);
}

/* Caller holds sc->lock. */
void dequeue(struct sealcache *sc, struct entry *e)
{
	struct entry **p;

	if (!e->queued)
		return;
	for (p = &sc->qhead; *p; p = &(*p)->qnext) {
		if (*p == e) {
			*p = e->qnext;
			break;
		}
	}
	sc->qtail = NULL;
	for (p = &sc->qhead; *p; p = &(*p)->qnext)
		sc->qtail = *p;
	e->queued = false;
}

/* Seals e, which the caller marked sealing; clears the mark after. */
int seal_entry(struct sealcache *sc, struct entry *e)
{
	int ret, tries = 0;

	do
		ret = seal_one(sc, e->name);
	while (ret == -EAGAIN && ++tries < 3);
	pthread_mutex_lock(&sc->lock);
	e->sealing = false;
	pthread_cond_broadcast(&sc->changed);
	pthread_mutex_unlock(&sc->lock);
	if (ret && ret != -ENOKEY && ret != -ENOENT)
		log_msg(LOG_ERR, "sealing keyset \"%s\" failed: %s", e->name, strerror(-ret));
	return ret;
}

static void *worker(void *arg)
{
	struct sealcache *sc = arg;
	struct entry *e;

	pthread_mutex_lock(&sc->lock);
	while (!sc->stop) {
		e = sc->qhead;
		if (!e) {
			pthread_cond_wait(&sc->work, &sc->lock);
			continue;
		}
		dequeue(sc, e);
		e->sealing = true;
		pthread_mutex_unlock(&sc->lock);
		seal_entry(sc, e);
		pthread_mutex_lock(&sc->lock);
	}
	pthread_mutex_unlock(&sc->lock);
	return NULL;
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
	if (n > MAX_WORKERS)
		n = MAX_WORKERS;
	return n ? n : 1;
}

int sealcache_start(struct sealcache *sc)
{
	size_t i, n = worker_count(sc->cfg);

	for (i = 0; i < n; i++) {
		if (pthread_create(&sc->workers[i], NULL, worker, sc))
			break;
		pthread_mutex_lock(&sc->lock);
		sc->nworkers++;
		pthread_mutex_unlock(&sc->lock);
	}
	if (!sc->nworkers)
		return -EAGAIN;
	log_msg(LOG_INFO, "sealing with %zu background worker(s), work factor %d", sc->nworkers,
		sc->cfg->work_factor);
	/* a password from a file or credential may be waiting already */
	sealcache_queue_stale(sc);
	return 0;
}

void sealcache_queue_stale(struct sealcache *sc)
{
	struct entry *e;
	uint64_t stamp;
	char **names;
	size_t n, i;
	int ret;

	if (sc->st->ops->list(sc->st->priv, &names, &n))
		return;
	for (i = 0; i < n; i++) {
		ret = export_stamp(sc, names[i], &stamp);
		if (ret) {
			note_problem(sc, names[i], ret, NULL);
			continue;
		}
		pthread_mutex_lock(&sc->lock);
		e = entry_get(sc, names[i]);
		if (e && !e->bad && pwid_for(sc, e) && !entry_current(sc, e, stamp)) {
			due_time(sc, e, stamp);
			enqueue(sc, e);
		}
		pthread_mutex_unlock(&sc->lock);
	}
	store_names_free(names, n);
}

