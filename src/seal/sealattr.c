/* What the filesystem and the reports ask of an export without opening
 * it: its attributes, worked out from the cached seal or learnt from the
 * keyset, never waiting for a seal or a password, and whether the keyset
 * can be exported at all (see sealcache.h, sealcache_priv.h). */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "sealcache_priv.h"

/* What the backup records know of a sealing key: a hash of the password
 * id and the work factor (either makes other bytes), never the id.
 * Caller holds sc->lock. */
static uint64_t key_hash(struct sealcache *sc, const uint8_t *pwid, int logn)
{
	uint8_t in[VERIFIER_ID_LEN + sizeof(logn)];
	uint64_t h;

	if (!pwid)
		return 0;
	memcpy(in, pwid, VERIFIER_ID_LEN);
	memcpy(in + VERIFIER_ID_LEN, &logn, sizeof(logn));
	/* the same key for nearly every keyset: hashed once */
	if (sc->kh && !memcmp(sc->kh_in, in, sizeof(in)))
		return sc->kh;
	crypto_generichash((uint8_t *)&h, sizeof(h), in, sizeof(in), NULL, 0);
	h = h ? h : 1; /* 0 means "no key" */
	memcpy(sc->kh_in, in, sizeof(in));
	sc->kh = h;
	return h;
}

/* Whether e's cached seal is of version stamp and made with the key
 * that seals e now, or the one a returning password will find. Caller
 * holds sc->lock. */
static bool seal_fits(const struct sealcache *sc, const struct entry *e, uint64_t stamp)
{
	const uint8_t *id = sc_pwid_for(sc, e);

	return e->cached && e->stamp == stamp && e->logn == sc_logn_for(sc, e) &&
	       (!id || !memcmp(e->pwid, id, VERIFIER_ID_LEN));
}

/* e's attributes for version stamp, and the report's facts when r is
 * given, under one hold of sc->lock. Caller holds it; returns the seal
 * time the backup records are told. */
static time_t attr_locked(struct sealcache *sc, struct entry *e, uint64_t stamp,
			  struct export_attr *a, struct export_report *r)
{
	if (r)
		sc_entry_report(sc, e, stamp, r);
	if (seal_fits(sc, e, stamp)) {
		/* current, or the seal a returning password will find */
		a->size = e->len;
		a->mtime = e->sealed_at;
		a->sealed = true;
		return e->sealed_at;
	}
	/* attr_of() learnt this version: e->ahead is made */
	a->size = e->ahead->pred_size;
	a->sealed = sc_pwid_for(sc, e) != NULL;
	a->mtime = a->sealed ? sc_due_time(sc, e, stamp) : e->ahead->pred_mtime;
	if (a->sealed)
		sc_entry_enqueue(sc, e); /* changed in the store: reseal */
	return 0;
}

static int attr_of(struct sealcache *sc, const char *name, struct export_attr *a,
		   struct export_report *r, int *bad)
{
	struct fresh_rec *frec, *known;
	time_t seal_time;
	struct entry *e;
	uint64_t stamp, key;
	bool locked;
	int ret, tries = 0;

	e = sc_entry_lock(sc, name, &stamp, &ret);
	/* A seal under way that keeps or serves again bytes made before
	 * takes no scrypt, and the attributes it leaves are the ones to
	 * tell (see sc_learn_version()). */
	while (e && e->sealing && !e->anew)
		pthread_cond_wait(&sc->changed, &sc->lock);
	if (!e)
		return ret;
	/* A cached seal of this version answers without reading the
	 * keyset: a mount over a full cache lists without reading any. What
	 * was learnt goes when a seal of it lands (sc_ahead_landed()), and
	 * a seal that landed under a key changed since fits no more: learnt
	 * again, a few times at most. */
	while (!seal_fits(sc, e, stamp) && !sc_pred_current(sc, e, stamp)) {
		pthread_mutex_unlock(&sc->lock);
		if (++tries > 3)
			return -EAGAIN;
		ret = sc_learn_version(sc, name, stamp);
		if (ret)
			return ret;
		pthread_mutex_lock(&sc->lock);
	}
	seal_time = attr_locked(sc, e, stamp, a, r);
	*bad = e->bad;
	/* known now, but for an export over import.max_size, which
	 * attr_report() notes */
	if (sc_importable(sc, a->size))
		e->examined = true;
	locked = !sc_pwid_for(sc, e);
	key = key_hash(sc, sc_pwid_for(sc, e), sc_logn_for(sc, e));
	known = frec = e->frec;
	pthread_mutex_unlock(&sc->lock);
	/* the record read in the same call: a status lists every keyset */
	if (sc->fresh && !fresh_observe(sc->fresh, &frec, name, stamp, key, seal_time, locked,
					r ? &r->backup : NULL) && r)
		r->fresh = true;
	if (frec != known) { /* looked up once: entries stay until sealcache_free() */
		pthread_mutex_lock(&sc->lock);
		e->frec = frec;
		pthread_mutex_unlock(&sc->lock);
	}
	return 0;
}

/* sealcache_attr(), and the report's facts when r is given. */
static int attr_report(struct sealcache *sc, const char *name, struct export_attr *a,
		       struct export_report *r)
{
	char why[160] = "";
	int ret, bad = 0;

	ret = attr_of(sc, name, a, r, &bad);
	if (ret == -ENOMEM || ret == -EAGAIN)
		return ret; /* passing trouble, not the keyset's */
	/* Never export what this configuration could not import again. */
	if (!ret && !sc_importable(sc, a->size)) {
		snprintf(why, sizeof(why), "its export (%zu bytes) would be larger than import.max_size "
			 "(%zu bytes), so it could not be restored; raise import.max_size", a->size,
			 sc->cfg->import_max_size);
		ret = -EFBIG;
	}
	if (ret || bad) /* an exportable keyset that was so has no news */
		sc_note_problem(sc, name, ret, *why ? why : NULL);
	else if (sc_marked(sc, name)) /* by a run before */
		sc_mark_sync(sc, name);
	if (ret)
		return -ENOENT; /* reported in status, never an entry that fails */
	/* a BLAKE2b of the name: a report, for each keyset of a status,
	 * has no use for it */
	if (!r)
		a->ino = sealcache_ino(name);
	return 0;
}

int sealcache_report(struct sealcache *sc, const char *name, struct export_report *r)
{
	struct export_attr a;
	int ret;

	/* Not the whole of *r: a status asks this for each of a hundred
	 * thousand keysets, and its text fields are long. */
	r->current = false;
	r->sealed_at = 0;
	r->fpr[0] = r->sealer[0] = r->why[0] = '\0';
	r->fresh = false;
	/* notes any problem; memory only if known */
	ret = attr_report(sc, name, &a, r);
	if (ret == -ENOENT && sealcache_problem(sc, name, r->why, sizeof(r->why)))
		return -EPERM;
	return ret;
}

int sealcache_attr(struct sealcache *sc, const char *name, struct export_attr *a)
{
	return attr_report(sc, name, a, NULL);
}

int sealcache_problem(struct sealcache *sc, const char *name, char *why, size_t size)
{
	struct export_attr a;
	int ret;

	ret = sc_entry_problem(sc, name, why, size);
	if (ret == 1) {
		/* not reached by the first scan yet: examined here */
		sealcache_attr(sc, name, &a);
		ret = sc_entry_problem(sc, name, why, size);
	}
	return ret == 1 ? 0 : ret;
}

bool sealcache_listed(struct sealcache *sc, const char *name)
{
	bool known = false;
	char why[8];
	struct entry *e;
	int listed = -1;

	pthread_mutex_lock(&sc->lock);
	e = sc_entry_find(sc, name);
	if (e && e->examined)
		listed = !e->bad;
	else
		known = sc_known(sc, name);
	pthread_mutex_unlock(&sc->lock);
	if (listed < 0 && known && !sc_marked(sc, name))
		listed = 1;
	return listed >= 0 ? listed : !sealcache_problem(sc, name, why, sizeof(why));
}

void sealcache_keyset_changed(struct sealcache *sc, const char *name)
{
	struct export_attr a;
	struct entry *e;

	pthread_mutex_lock(&sc->lock);
	e = sc_entry_get(sc, name);
	if (e)
		e->why_stale = true;
	pthread_mutex_unlock(&sc->lock);
	sealcache_attr(sc, name, &a); /* its error is in status and the log */
	if (sc->changed_fn)
		sc->changed_fn(sc->changed_arg, name);
}
