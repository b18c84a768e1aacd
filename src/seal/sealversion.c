/* What the seal cache learns of a keyset version without sealing it:
 * the export's exact size, the keyset's time and fingerprint, read once
 * per version and key (see sealcache_priv.h). */
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "export.h"
#include "sealcache_priv.h"

/* The key the size of e's export is predicted for: its recipients' id,
 * zero for a password. Caller holds sc->lock. */
static void pred_key(const struct sealcache *sc, const struct entry *e,
		     uint8_t key[static VERIFIER_ID_LEN])
{
	const struct recipset *rs = sc_rset_for(sc, e);

	if (rs)
		memcpy(key, rs->id, VERIFIER_ID_LEN);
	else
		memset(key, 0, VERIFIER_ID_LEN);
}

/* The exact size of ks's export to rs, or under the passphrase (rs
 * NULL): the scrypt stanza has the same size whatever the passphrase, so
 * none is needed. */
static int predict_size(struct sealcache *sc, const struct recipset *rs, const struct keyset *ks,
			size_t *size)
{
	static const struct age_pass any = { "-", 1 };
	struct age_recipient r = { 0 };
	int ret;

	if (rs)
		return export_size(ks, &(struct export_key){ rs->l.r, rs->l.n, sc->signer }, size);
	ret = age_scrypt_recipient(&r, &any, sc->cfg->work_factor);
	if (!ret)
		ret = export_size(ks, &(struct export_key){ &r, 1, sc->signer }, size);
	age_recipient_clear(&r);
	return ret;
}

/* What name's export is sealed with now: *rcp holds a reference for rs. */
static int sealing_key(struct sealcache *sc, const char *name, struct recipients **rcp,
		       const struct recipset **rs, uint8_t key[static VERIFIER_ID_LEN])
{
	struct entry *e;

	pthread_mutex_lock(&sc->lock);
	e = sc_entry_get(sc, name);
	if (e) {
		*rs = sc_rset_for(sc, e);
		*rcp = *rs ? recipients_ref(sc->rcp) : NULL;
		pred_key(sc, e, key);
	}
	pthread_mutex_unlock(&sc->lock);
	return e ? 0 : -ENOMEM;
}

/* Reads the keyset once per version (stamp) and key for what takes no
 * crypto to know: the export's exact size, the keyset's time, its
 * fingerprint; and keeps a cached seal of the same content as the seal
 * of this version. */
int sc_learn_version(struct sealcache *sc, const char *name, uint64_t stamp)
{
	char fpr[2 * BUNDLE_FPR_LEN + 1], cid[65];
	uint8_t key[VERIFIER_ID_LEN], pwid[VERIFIER_ID_LEN];
	const uint8_t *id;
	struct recipients *rcp = NULL;
	const struct recipset *rs;
	struct keyset ks = { 0 };
	struct entry *e;
	struct ahead *a;
	bool same;
	size_t size;
	int ret, logn = 0;

	ret = sealing_key(sc, name, &rcp, &rs, key);
	if (!ret)
		ret = sc_read_keyset(sc, name, &ks, false);
	if (!ret)
		ret = predict_size(sc, rs, &ks, &size);
	if (ret)
		goto out;
	bundle_fingerprint(&ks, fpr);
	export_content_id(&ks, cid);
	pthread_mutex_lock(&sc->lock);
	e = sc_entry_get(sc, name);
	a = e ? sc_entry_ahead(e) : NULL;
	if (a) {
		a->pred_stamp = stamp;
		a->pred_size = size;
		memcpy(a->pred_key, key, VERIFIER_ID_LEN);
		a->pred_mtime = keyset_mtime(&ks);
		a->has_fpr = sc_digest_set(a->fpr, fpr);
	}
	/* A seal under way that has not planned yet, or keeps the cached
	 * seal or serves a kept one, is waited for: the caller reports the
	 * attributes next, and told "not sealed" meanwhile the backup
	 * records would take this version for a change and its time for the
	 * changed time. It reads and rewrites one small file, no scrypt; a
	 * seal that makes new bytes says so once it knows (after looking for
	 * a kept seal), and is not waited for. */
	while (e && e->sealing && !e->anew)
		pthread_cond_wait(&sc->changed, &sc->lock);
	/* Kept under the sealing mark, so no seal of the same keyset can
	 * land between reading the cache file and rewriting it. */
	same = e && !e->sealing && sc_keeps_seal(e, stamp, cid);
	/* Else an earlier seal of this content a backup read, under the key
	 * that seals it now, is served again before the attributes tell a
	 * change (sealkept.h): one failed open when there is none. */
	id = e && !same && !e->sealing && !sc_entry_current(sc, e, stamp) ? sc_pwid_for(sc, e) :
	     NULL;
	if (id) {
		memcpy(pwid, id, VERIFIER_ID_LEN);
		logn = sc_logn_for(sc, e);
	}
	if (same || id)
		e->sealing = true;
	pthread_mutex_unlock(&sc->lock);
	if (same)
		seal_adopt(sc, name, stamp, cid);
	else if (id)
		seal_kept(sc, name, stamp, cid, pwid, logn);
	if (same || id) {
		pthread_mutex_lock(&sc->lock);
		e->sealing = false;
		pthread_cond_broadcast(&sc->changed);
		pthread_mutex_unlock(&sc->lock);
	}
	ret = a ? 0 : -ENOMEM;
out:
	keyset_clear(&ks);
	recipients_put(rcp);
	return ret;
}

/* Whether e's predicted attributes are for version stamp and the key
 * that seals it now. Caller holds sc->lock. */
bool sc_pred_current(const struct sealcache *sc, const struct entry *e, uint64_t stamp)
{
	uint8_t key[VERIFIER_ID_LEN];

	pred_key(sc, e, key);
	return e->ahead && e->ahead->pred_stamp == stamp &&
	       !memcmp(e->ahead->pred_key, key, VERIFIER_ID_LEN);
}

int sealcache_fingerprint(struct sealcache *sc, const char *name,
			  char hex[static 2 * BUNDLE_FPR_LEN + 1])
{
	struct entry *e;
	uint64_t stamp;
	int ret, tries = 0;
	bool known;

	while ((e = sc_entry_lock(sc, name, &stamp, &ret))) {
		known = sc_pred_current(sc, e, stamp) && e->ahead->has_fpr;
		if (known)
			sodium_bin2hex(hex, 2 * BUNDLE_FPR_LEN + 1, e->ahead->fpr, BUNDLE_FPR_LEN);
		pthread_mutex_unlock(&sc->lock);
		if (known)
			return 0;
		if (++tries > 3)
			return -EAGAIN; /* the keyset keeps changing under us */
		ret = sc_learn_version(sc, name, stamp);
		if (ret)
			return ret;
	}
	return ret;
}

