/* Sealing one keyset into the seal cache (locking in sealcache_priv.h):
 * decide under sc->lock what the seal is for, seal under the vault's read
 * lock (export.h holds the crypto), write the cache file and record it.
 *
 * A cached seal of the keyset's current content is kept rather than
 * sealed again, only its header restamped: files rewritten with the same
 * bytes (a store restored from a backup, moved to another disk, or
 * upgraded from a cache format that did not name the content) then keep
 * exactly the export backups already hold. */
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
		e->sealed_at = h->sealed_at;
		e->len = h->len;
	}
	pthread_mutex_unlock(&sc->lock);
}

void seal_sync(struct sealcache *sc)
{
	size_t n;

	pthread_mutex_lock(&sc->lock);
	n = sc->unsynced;
	sc->unsynced = 0;
	pthread_mutex_unlock(&sc->lock);
	if (n && syncfs(sc->cfd))
		log_msg(LOG_ERR, "seal cache: syncfs: %m");
}

/* Cache files are written without an fsync each (sealfile.h): one
 * syncfs() makes a batch durable, once no other seal is queued or every
 * SYNC_BATCH files, so a thousand seals cost one flush, not two
 * thousand. */
static void written(struct sealcache *sc)
{
	bool now;

	pthread_mutex_lock(&sc->lock);
	now = ++sc->unsynced >= SYNC_BATCH || !sc->pool || !pool_pending(sc->pool);
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
		written(sc);
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

/* 1 if the seal is current already, 2 if the cached seal holds the
 * content already (its header needs the new stamp only); p->h.stamp and
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
		/* scrypt, maybe: attributes waiting for this seal stop */
		e->anew = true;
		pthread_cond_broadcast(&sc->changed);
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
	struct export_key key = { &r, 1 };
	struct age_pass pass;
	uint64_t gen;
	int ret;

	if (p->rs)
		return export_seal(ks, &(struct export_key){ p->rs->l.r, p->rs->l.n }, pem, len);
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

/* Seals one keyset into the cache unless its seal is current. -EAGAIN if
 * the password changed under us (the caller tries again). */
static int seal_one(struct sealcache *sc, const char *name)
{
	struct keyset ks = { 0 };
	struct plan p = { 0 };
	char *pem = NULL;
	int ret;

	ret = sc_export_stamp(sc, name, &p.h.stamp);
	if (!ret)
		ret = sc_read_keyset(sc, name, &ks, true);
	if (!ret) {
		export_content_id(&ks, p.h.content);
		ret = seal_plan(sc, name, &p);
	}
	if (!ret)
		ret = seal_under(sc, &p, &ks, &pem, &p.h.len);
	/* 2: kept; seal_adopt() checks the file's header says so too */
	if (ret == 2)
		ret = seal_adopt(sc, name, p.h.stamp, p.h.content);
	else if (!ret)
		ret = sealfile_write(sc->cfd, name, &p.h, pem);
	if (!ret && pem) {
		written(sc);
		record(sc, &p.h);
		log_msg(LOG_INFO, "sealed keyset \"%s\"", name);
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
	if (ret && ret != -ENOKEY && ret != -ENOENT)
		log_msg(LOG_ERR, "sealing keyset \"%s\" failed: %s", e->name, strerror(-ret));
	if (sc->fresh)
		fresh_seal_done(sc->fresh, e->name, ret, seconds_since(&t0));
	if (!ret && sc->changed_fn)
		sc->changed_fn(sc->changed_arg, e->name);
	return ret;
}
