/* Sealing one keyset into the seal cache (locking in sealcache_priv.h):
 * decide under sc->lock what the seal is for, seal under the vault's read
 * lock (export.h holds the crypto), write the cache file and record it.
 *
 * A cached seal of the keyset's current content is kept rather than
 * sealed again, only its header restamped: files rewritten with the same
 * bytes (a store restored from a backup, moved to another disk, or
 * upgraded from a cache format that did not name the content) then keep
 * exactly the export backups already hold. So is an earlier seal a
 * backup read, when its content comes back (sealkept.h): a backup
 * imported and activated after the keys were damaged is served with the
 * bytes the backup holds. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keyfs/armor.h"
#include "keyfs/dirwalk.h"
#include "keyfs/log.h"
#include "keyfs/store.h"

#include "export.h"
#include "sealcache_priv.h"
#include "sealfile.h"
#include "sealkept.h"

struct plan {
	struct sealfile h;	/* the seal to make */
	uint64_t gen;		/* vault generation its key id is for */
	bool try_cached;	/* a cached seal under this key, content unknown */
	struct recipients *rcp;	/* a reference held while rs is used */
	const struct recipset *rs; /* the recipients it seals to; NULL: a password */
};

static void record(struct sealcache *sc, const struct sealfile *h)
{
	struct entry *e;

	pthread_mutex_lock(&sc->lock);
	e = sc_entry_get(sc, h->name);
	if (e) {
		e->cached = true;
		e->stamp = h->stamp;
		memcpy(e->pwid, h->pwid, VERIFIER_ID_LEN);
		e->logn = h->logn;
		sc_ctag_set(e, h->content);
		/* a kept seal served again is older than the one it replaces */
		if (e->sealed_at > e->newest)
			e->newest = e->sealed_at;
		e->sealed_at = h->sealed_at;
		if (e->sealed_at > e->newest)
			e->newest = e->sealed_at;
		e->len = h->len;
		sc_ahead_landed(e);
	}
	pthread_mutex_unlock(&sc->lock);
}

static time_t now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
	return t.tv_sec;
}

/* The log says a batch, not each keyset: a first mount of a large store
 * would log more lines than journald keeps of a service by default
 * (10 000 in 30 s), crowding out the warnings that matter, and the
 * workers took turns at the log. -d logs each keyset too. */
void seal_sync(struct sealcache *sc)
{
	char one[KEYSET_NAME_MAX + 1];
	size_t n, sealed;

	pthread_mutex_lock(&sc->lock);
	n = sc->unsynced;
	sealed = sc->batch_sealed;
	memcpy(one, sc->batch_first, sizeof(one));
	sc->unsynced = sc->batch_sealed = 0;
	pthread_mutex_unlock(&sc->lock);
	if (n && syncfs(sc->cfd))
		log_msg(LOG_ERR, "seal cache: syncfs: %m");
	if (sealed == 1)
		log_msg(LOG_INFO, "sealed keyset \"%s\"", one);
	else if (sealed)
		log_msg(LOG_INFO, "sealed %zu keysets", sealed);
}

/* Cache files are written without an fsync each (sealfile.h): one
 * syncfs() makes a batch durable, once no other seal is queued or the
 * batch is full or old, so a thousand seals cost one flush, not two
 * thousand. Queued, not running: the worker calling is one of those
 * running, and the last seals of a burst each end a batch. sealed: the
 * keyset a new seal was written for, else NULL. */
static void written(struct sealcache *sc, const char *sealed)
{
	size_t queued = 0, running;
	bool now;

	pthread_mutex_lock(&sc->lock);
	if (!sc->unsynced++)
		sc->batch_began = now_s();
	if (sealed && !sc->batch_sealed++)
		snprintf(sc->batch_first, sizeof(sc->batch_first), "%s", sealed);
	if (sc->pool)
		pool_counts(sc->pool, &queued, &running);
	now = sc->unsynced >= SYNC_BATCH || !queued ||
	      now_s() - sc->batch_began >= SYNC_BATCH_SECONDS;
	pthread_mutex_unlock(&sc->lock);
	if (now)
		seal_sync(sc);
}

int seal_adopt(struct sealcache *sc, const char *name, uint64_t stamp, const char *content)
{
	struct sealfile h;
	struct entry *e;
	uint64_t old = 0;
	int fd, ret;

	fd = dirwalk_open_regular(sc->cfd, name, NULL, NULL);
	if (fd < 0)
		return fd;
	ret = sealfile_read(fd, &h);
	if (!ret && (strcmp(h.name, name) || (h.content[0] && strcmp(h.content, content))))
		ret = -ESTALE;
	if (!ret) {
		old = h.stamp;
		h.stamp = stamp;
		strcpy(h.content, content);
		ret = sealfile_rewrite(sc->cfd, name, fd, &h);
	}
	close(fd);
	if (!ret) {
		written(sc, NULL);
		/* Before the entry shows the kept seal: whoever then asks for
		 * the attributes tells the backup records a version they hold
		 * already, not a change. Its record may still be at the old
		 * version although the seal was made after the record was
		 * last told (a stop came first). */
		if (sc->fresh)
			fresh_same_content(sc->fresh, name, old, stamp);
		record(sc, &h); /* what is on disk now, whatever the entry thought */
		log_msg(LOG_INFO, "keyset \"%s\": same content as its cached seal, kept", name);
		return 0;
	}
	if (ret == -ESTALE) {
		/* the file holds something else: seal anew next time */
		pthread_mutex_lock(&sc->lock);
		e = sc_entry_get(sc, name);
		if (e) {
			e->cached = false;
			e->has_ctag = false;
		}
		pthread_mutex_unlock(&sc->lock);
	}
	return ret;
}

/* The cache file of name, read into *cur, if a seal of content under
 * (pwid, logn) that replaces it should keep it (sealkept.h): a seal of
 * this keyset and of other content, under that very key (another key
 * could never be served again), read to the end by a backup (the seals
 * backup tools hold), and whole. Else NULL. */
static const struct sealfile *to_keep(struct sealcache *sc, const char *name, const char *content,
				      const uint8_t pwid[static VERIFIER_ID_LEN], int logn,
				      struct sealfile *cur)
{
	struct fresh_info i;
	bool keep;
	int fd;

	/* No backup read any seal of it (a first seal of every keyset): no
	 * cache file to open. */
	if (!sc->fresh || fresh_get(sc->fresh, name, &i) || !i.backup_at)
		return NULL;
	fd = dirwalk_open_regular(sc->cfd, name, NULL, NULL);
	if (fd < 0)
		return NULL;
	keep = !sealfile_read(fd, cur) && !strcmp(cur->name, name) && cur->content[0] &&
	       strcmp(cur->content, content) && cur->logn == logn &&
	       !memcmp(cur->pwid, pwid, VERIFIER_ID_LEN) && i.backup_sealed == cur->sealed_at &&
	       !sealfile_check(fd, cur);
	close(fd);
	return keep ? cur : NULL;
}

/* Whether <cache>/.kept may hold seals: none to look for at each seal
 * until one is kept (keeping: about to be). */
static bool kept_any(struct sealcache *sc, bool keeping)
{
	bool any;

	pthread_mutex_lock(&sc->lock);
	sc->kept |= keeping;
	any = sc->kept;
	pthread_mutex_unlock(&sc->lock);
	return any;
}

int seal_kept(struct sealcache *sc, const char *name, uint64_t stamp, const char *content,
	      const uint8_t pwid[static VERIFIER_ID_LEN], int logn)
{
	struct sealfile cur, h;
	struct entry *e;
	time_t newest = 0;
	int ret = -ENOENT;

	if (kept_any(sc, false))
		ret = sealkept_take(sc->cfd, name, stamp, content, pwid, logn,
				    to_keep(sc, name, content, pwid, logn, &cur), &h, &newest);
	pthread_mutex_lock(&sc->lock);
	e = sc_entry_get(sc, name);
	if (e && newest > e->newest)
		e->newest = newest;
	pthread_mutex_unlock(&sc->lock);
	if (ret)
		return ret;
	written(sc, NULL);
	record(sc, &h);
	log_msg(LOG_NOTICE, "keyset \"%s\": the same content as a seal made before, which a backup "
		"read: its bytes are served again", name);
	/* An older time than the seal it replaces, maybe the same size: the
	 * kernel must not answer a stat with the replaced one's (rsync would
	 * see a change). Attributes asked for may get here too, no seal. */
	if (sc->changed_fn)
		sc->changed_fn(sc->changed_arg, name);
	return 0;
}

/* 1 if the seal is current already, 2 if the cached seal holds the
 * content already (its header needs the new stamp only), 0 to seal (or
 * to serve a kept seal: seal_one() marks e anew if none); p->h.stamp and
 * content are set by the caller. */
static int seal_plan(struct sealcache *sc, const char *name, struct plan *p)
{
	const uint8_t *id;
	struct entry *e;
	int ret = 0;

	pthread_mutex_lock(&sc->lock);
	e = sc_entry_get(sc, name);
	id = e ? sc_pwid_for(sc, e) : NULL;
	if (e)
		e->anew = false; /* a try again after -EAGAIN plans anew */
	if (!e) {
		ret = -ENOMEM;
	} else if (!id) {
		ret = -ENOKEY;
	} else if (sc_entry_current(sc, e, p->h.stamp)) {
		ret = 1; /* someone else sealed it meanwhile */
	} else if (sc_keeps_seal(e, p->h.stamp, p->h.content) && e->logn == sc_logn_for(sc, e) &&
		   !memcmp(e->pwid, id, VERIFIER_ID_LEN)) {
		ret = 2; /* the cached seal holds this very content, under this key */
	} else {
		snprintf(p->h.name, sizeof(p->h.name), "%s", name);
		memcpy(p->h.pwid, id, VERIFIER_ID_LEN);
		p->h.logn = sc_logn_for(sc, e);
		p->h.sealed_at = sc_due_time(sc, e, p->h.stamp);
		p->gen = sc->ids.gen;
		p->rs = sc_rset_for(sc, e);
		p->rcp = p->rs ? recipients_ref(sc->rcp) : NULL;
		/* a seal to recipients cannot be opened here to look inside */
		p->try_cached = !p->rs && e->cached && !e->has_ctag && e->logn == p->h.logn &&
				!memcmp(e->pwid, id, VERIFIER_ID_LEN);
	}
	pthread_mutex_unlock(&sc->lock);
	return ret;
}

/* Does the cached seal of name, opened with pass, hold content? */
static bool cached_holds(struct sealcache *sc, const char *name, const struct age_pass *pass,
			 const char *content)
{
	uint8_t *pem = NULL, *bin = NULL, *tar = NULL;
	size_t bin_len, tar_len;
	struct keyset ks = { 0 };
	struct sealfile h;
	char cid[65] = "";
	int fd;

	fd = dirwalk_open_regular(sc->cfd, name, NULL, NULL);
	if (fd < 0)
		return false;
	if (sealfile_read(fd, &h) || !(pem = malloc(h.len)) ||
	    pread(fd, pem, h.len, (off_t)h.off) != (ssize_t)h.len)
		goto out;
	if (armor_decode(pem, h.len, &bin, &bin_len) ||
	    age_unseal(bin, bin_len, pass, 1, &tar, &tar_len, NULL) ||
	    bundle_unpack(tar, tar_len, STORE_MEMBER_MAX, &ks))
		goto out;
	export_content_id(&ks, cid);
out:
	keyset_clear(&ks);
	if (tar)
		sodium_free(tar);
	free(bin);
	free(pem);
	close(fd);
	return !strcmp(cid, content);
}

/* Seals ks to the plan's recipients, or under the keyset's password if
 * it is still the one the plan's id names (the vault generation has not
 * moved): else -EAGAIN. 2 if the cached seal turned out to hold this
 * content already. The vault read lock is held for the scrypt and
 * nothing else is taken meanwhile. */
static int seal_under(struct sealcache *sc, const struct plan *p, const struct keyset *ks,
		      char **pem, size_t *len)
{
	struct age_recipient r = { 0 };
	struct export_key key = { &r, 1, sc->signer };
	struct age_pass pass;
	uint64_t gen;
	int ret;

	if (p->rs)
		return export_seal(ks, &(struct export_key){ p->rs->l.r, p->rs->l.n, sc->signer },
				   pem, len);
	ret = vault_read_for(sc->v, p->h.name, &pass, &gen);
	if (ret)
		return ret;
	if (gen != p->gen)
		ret = -EAGAIN;
	else if (p->try_cached && cached_holds(sc, p->h.name, &pass, p->h.content))
		ret = 2;
	else if (!(ret = age_scrypt_recipient(&r, &pass, p->h.logn)))
		ret = export_seal(ks, &key, pem, len);
	age_recipient_clear(&r);
	vault_read_end(sc->v);
	return ret;
}

/* The seal under way makes new bytes (scrypt, maybe): attributes
 * waiting for it stop (sc_learn_version()). */
static void mark_anew(struct sealcache *sc, const char *name)
{
	struct entry *e;

	pthread_mutex_lock(&sc->lock);
	e = sc_entry_get(sc, name);
	if (e)
		e->anew = true;
	pthread_cond_broadcast(&sc->changed);
	pthread_mutex_unlock(&sc->lock);
}

/* Seals one keyset into the cache unless its seal is current. -EAGAIN if
 * the password changed under us (the caller tries again). */
static int seal_one(struct sealcache *sc, const char *name)
{
	const struct sealfile *keep;
	struct sealfile cur;
	struct keyset ks = { 0 };
	struct plan p = { 0 };
	char *pem = NULL;
	int ret;

	ret = sc_read_stamped(sc, name, &ks, &p.h.stamp);
	if (!ret) {
		export_content_id(&ks, p.h.content);
		ret = seal_plan(sc, name, &p);
	}
	/* 1: a kept seal of this content under this key is served again */
	if (!ret && !seal_kept(sc, name, p.h.stamp, p.h.content, p.h.pwid, p.h.logn))
		ret = 1;
	else if (!ret)
		mark_anew(sc, name);
	if (!ret)
		ret = seal_under(sc, &p, &ks, &pem, &p.h.len);
	/* The seal replaced is kept if a backup read it; kept seals of
	 * another key go (a retired password leaves no ciphertext). */
	if (!ret && pem) {
		keep = to_keep(sc, name, p.h.content, p.h.pwid, p.h.logn, &cur);
		if (kept_any(sc, keep != NULL) &&
		    sealkept_put(sc->cfd, name, keep, p.h.pwid, p.h.logn))
			log_msg(LOG_WARNING,
				"seal cache of \"%s\": keeping the seal it replaces failed", name);
	}
	/* 2: kept; seal_adopt() checks the file's header says so too */
	if (ret == 2)
		ret = seal_adopt(sc, name, p.h.stamp, p.h.content);
	else if (!ret)
		ret = sealfile_write(sc->cfd, name, &p.h, pem);
	if (!ret && pem) {
		record(sc, &p.h);
		log_msg(LOG_DEBUG, "sealed keyset \"%s\"", name);
		written(sc, name);
	}
	free(pem);
	keyset_clear(&ks);
	recipients_put(p.rcp);
	return ret > 0 ? 0 : ret;
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

int seal_entry(struct sealcache *sc, struct entry *e)
{
	struct timespec t0;
	int ret, tries = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do
		ret = seal_one(sc, e->name);
	while (ret == -EAGAIN && ++tries < 3);
	pthread_mutex_lock(&sc->lock);
	e->sealing = false;
	e->anew = false;
	pthread_cond_broadcast(&sc->changed);
	pthread_mutex_unlock(&sc->lock);
	/* the keyset's own trouble (nothing to back up, a bad member): the
	 * status and README.txt name it even when nothing listed export/ */
	if (ret == -ENODATA || ret == -EINVAL || ret == -E2BIG || ret == -EFBIG)
		sc_note_problem(sc, e->name, ret, NULL);
	else if (ret && ret != -ENOKEY && ret != -ENOENT)
		log_msg(LOG_ERR, "sealing keyset \"%s\" failed: %s", e->name, strerror(-ret));
	if (sc->fresh)
		fresh_seal_done(sc->fresh, e->name, ret, seconds_since(&t0));
	if (!ret && sc->changed_fn)
		sc->changed_fn(sc->changed_arg, e->name);
	return ret;
}
