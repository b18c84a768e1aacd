/* The seal cache's entry table: one entry per keyset seen, created on
 * first sight and kept until the daemon stops, with what is known of its
 * cached seal, its next seal and why it cannot be exported (locking in
 * sealcache_priv.h). */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keyfs/dirwalk.h"
#include "keyfs/log.h"
#include "keyfs/meta.h"

#include "sealcache_priv.h"
#include "sealfile.h"

uint64_t sealcache_ino(const char *name)
{
	/* High bit set: never collides with the fixed nodes 1..6. */
	return sc_name_hash(name) | (1ULL << 63);
}

static bool ctag_of(const char *hex, uint64_t *tag);

/* Reads the header of name's cache file into c, when its entry is made:
 * the first time the keyset is asked for. A file of the first format
 * names no keyset (*first); a file that names another keyset is never
 * served for this one. Only reads: this may run outside sc->lock. */
static int read_cached(struct sealcache *sc, const char *name, struct cached *c, bool *first)
{
	struct sealfile h;
	int fd, ret;

	fd = dirwalk_open_regular(sc->cfd, name, NULL, NULL);
	if (fd < 0)
		return fd;
	ret = sealfile_read(fd, &h);
	*first = !ret && !h.name[0];
	if (!ret && !*first && strcmp(h.name, name)) {
		log_msg(LOG_WARNING, "seal cache file \"%s\" holds keyset \"%s\": not served",
			name, h.name);
		ret = -EINVAL;
	}
	close(fd);
	if (ret)
		return ret;
	*c = (struct cached){ .stamp = h.stamp, .sealed_at = h.sealed_at, .len = h.len,
			      .logn = h.logn };
	memcpy(c->pwid, h.pwid, VERIFIER_ID_LEN);
	c->has_ctag = ctag_of(h.content, &c->ctag);
	return 0;
}

/* Rewrites name's cache file of the first format in the current one,
 * its sealed bytes untouched, as its entry is made, under sc->lock. No
 * seal of name can have landed since the file was read (a seal has an
 * entry), so this never puts an older header over a newer seal, as a
 * rewrite by each reader could. */
static void upgrade_first(struct sealcache *sc, const char *name)
{
	struct sealfile h;
	int fd;

	fd = dirwalk_open_regular(sc->cfd, name, NULL, NULL);
	if (fd < 0)
		return;
	if (!sealfile_read(fd, &h) && !h.name[0]) {
		snprintf(h.name, sizeof(h.name), "%s", name);
		if (sealfile_rewrite(sc->cfd, name, fd, &h))
			log_msg(LOG_WARNING, "seal cache of \"%s\": upgrading the file format failed",
				name);
	}
	close(fd);
}

static void keep_cached(struct entry *e, const struct cached *c)
{
	e->cached = true;
	e->stamp = c->stamp;
	memcpy(e->pwid, c->pwid, VERIFIER_ID_LEN);
	e->logn = c->logn;
	e->ctag = c->ctag;
	e->has_ctag = c->has_ctag;
	e->sealed_at = c->sealed_at;
	e->newest = c->sealed_at;
	e->len = c->len;
}

bool sc_digest_set(uint8_t bin[static CONTENT_ID_LEN], const char *hex)
{
	size_t n;

	return strlen(hex) == 2 * CONTENT_ID_LEN &&
	       !sodium_hex2bin(bin, CONTENT_ID_LEN, hex, 2 * CONTENT_ID_LEN, NULL, &n, NULL) &&
	       n == CONTENT_ID_LEN;
}

static bool ctag_of(const char *hex, uint64_t *tag)
{
	uint8_t bin[CONTENT_ID_LEN];

	if (!sc_digest_set(bin, hex))
		return false;
	memcpy(tag, bin, sizeof(*tag));
	return true;
}

void sc_ctag_set(struct entry *e, const char *hex)
{
	e->has_ctag = ctag_of(hex, &e->ctag);
}

bool sc_ctag_is(const struct entry *e, const char *hex)
{
	uint64_t tag;

	return e->has_ctag && ctag_of(hex, &tag) && tag == e->ctag;
}

bool sc_keeps_seal(const struct entry *e, uint64_t stamp, const char *cid)
{
	return e->cached && e->stamp != stamp && sc_ctag_is(e, cid);
}

static bool same_name(const struct hnode *n, const void *name)
{
	return !strcmp(((const struct entry *)n)->name, name);
}

struct entry *sc_entry_find(struct sealcache *sc, const char *name)
{
	return (struct entry *)htab_find(&sc->entries, htab_hash(name), same_name, name);
}

/* A new entry for name, with what its cache file holds: read already
 * (cached: NULL if it has none; first: of the first format), or read
 * now. Caller holds sc->lock. */
static struct entry *entry_add(struct sealcache *sc, const char *name, const struct cached *cached,
			       bool read, bool first)
{
	struct cached h;
	struct entry *e;

	_Static_assert(offsetof(struct entry, h) == 0, "htab_add_named() returns the hnode");
	e = htab_add_named(&sc->entries, sizeof(*e), offsetof(struct entry, name), name,
			   htab_hash(name));
	if (!e)
		return NULL;
	e->own_pw = meta_own_password(sc->state, name);
	if (!read && keyset_name_valid(name) && !read_cached(sc, name, &h, &first))
		cached = &h;
	if (cached)
		keep_cached(e, cached);
	if (cached && first)
		upgrade_first(sc, name);
	return e;
}

struct entry *sc_entry_get(struct sealcache *sc, const char *name)
{
	struct entry *e = sc_entry_find(sc, name);

	/* none had a cache file at start, nor was one written since: a
	 * seal has an entry */
	return e ? e : entry_add(sc, name, NULL, sc_known_absent(sc, name), false);
}

struct entry *sc_entry_next(struct sealcache *sc, size_t *pos, struct entry *e)
{
	return (struct entry *)htab_next(&sc->entries, pos, e ? &e->h : NULL);
}

struct entry *sc_entry_lock(struct sealcache *sc, const char *name, uint64_t *stamp, int *err)
{
	bool known, read, have = false, none = false, first = false;
	struct cached h;
	struct entry *e;

	*err = sc_export_stamp(sc, name, stamp);
	if (*err)
		return NULL;
	/* The cache file of a keyset asked for the first time is read
	 * before the lock is taken (or found in the index of a clean stop):
	 * the first scan asks for every keyset, and a listing waits on
	 * sc->lock, not on its reads. No seal of name is written meanwhile:
	 * a seal has an entry. While the names of the cache's files at
	 * start are known, one not among them has none to read. */
	pthread_mutex_lock(&sc->lock);
	known = sc_entry_find(sc, name) != NULL;
	if (!known) {
		have = sc_index_get(sc, name, &h);
		none = !have && sc_known_absent(sc, name);
	}
	pthread_mutex_unlock(&sc->lock);
	read = !known && keyset_name_valid(name);
	if (read && !have && !none)
		have = !read_cached(sc, name, &h, &first);
	pthread_mutex_lock(&sc->lock);
	e = sc_entry_find(sc, name);
	if (!e)
		e = entry_add(sc, name, have ? &h : NULL, read, first);
	if (!e) {
		pthread_mutex_unlock(&sc->lock);
		*err = -ENOMEM;
	}
	return e;
}

const struct recipset *sc_rset_for(const struct sealcache *sc, const struct entry *e)
{
	const struct recipset *rs;
	bool own;

	rs = recipients_for(sc->rcp, e->name, &own);
	if (rs && !own && (e->own_pw || sealkey_has_own(&sc->ids, e->name)))
		return NULL; /* its own password beats the global recipients */
	return rs;
}

const uint8_t *sc_pwid_for(const struct sealcache *sc, const struct entry *e)
{
	const struct recipset *rs = sc_rset_for(sc, e);

	return rs ? rs->id : sealkey_id(&sc->ids, e->name, e->own_pw);
}

int sc_logn_for(const struct sealcache *sc, const struct entry *e)
{
	return sc_rset_for(sc, e) ? 0 : sc->cfg->work_factor;
}

bool sc_entry_current(const struct sealcache *sc, const struct entry *e, uint64_t stamp)
{
	const uint8_t *id = sc_pwid_for(sc, e);

	return e->cached && e->stamp == stamp && e->logn == sc_logn_for(sc, e) && id &&
	       !memcmp(e->pwid, id, VERIFIER_ID_LEN);
}

void sc_entry_enqueue(struct sealcache *sc, struct entry *e)
{
	if (!e->sealing && sc->pool)
		pool_push(sc->pool, &e->item);
}

bool sc_importable(const struct sealcache *sc, size_t size)
{
	return size <= sc->cfg->import_max_size;
}

struct ahead *sc_entry_ahead(struct entry *e)
{
	if (!e->ahead)
		e->ahead = calloc(1, sizeof(*e->ahead));
	return e->ahead;
}

/* Now, but never the time of a seal served or kept before: a floor even
 * when that seal is gone from the cache. */
static time_t due_now(const struct entry *e)
{
	time_t last = e->newest > e->sealed_at ? e->newest : e->sealed_at;
	time_t now = time(NULL);

	return now > last ? now : last + 1;
}

/* The time the seal of (stamp, current key) counts as made: when it
 * became due, so the attributes reported before the seal stay true after
 * it. */
time_t sc_due_time(struct sealcache *sc, struct entry *e, uint64_t stamp)
{
	static const uint8_t none[VERIFIER_ID_LEN];
	const uint8_t *id = sc_pwid_for(sc, e);
	struct ahead *a = sc_entry_ahead(e);

	if (!a)
		return due_now(e); /* out of memory: a time not kept */
	if (!id)
		id = none;
	/* A reseal at another work factor has the same size: only a new
	 * time tells rsync's quick check that the bytes changed. */
	if (a->due_stamp != stamp || memcmp(a->due_pwid, id, VERIFIER_ID_LEN) ||
	    a->due_logn != sc_logn_for(sc, e) || !a->due_at) {
		a->due_stamp = stamp;
		memcpy(a->due_pwid, id, VERIFIER_ID_LEN);
		a->due_logn = sc_logn_for(sc, e);
		a->due_at = due_now(e);
	}
	return a->due_at;
}

/* A seal of e's version just landed. What was learnt ahead of it for that
 * version (size, due time, fingerprint) is in the entry now or no longer
 * needed, and a cold seal of a large store would otherwise keep an ahead
 * for every keyset: it goes, unless it is about a later version. */
void sc_ahead_landed(struct entry *e)
{
	struct ahead *a = e->ahead;

	if (!a || (a->pred_stamp && a->pred_stamp != e->stamp) ||
	    (a->due_at && (a->due_stamp != e->stamp || a->due_logn != e->logn ||
			   memcmp(a->due_pwid, e->pwid, VERIFIER_ID_LEN))))
		return;
	free(a);
	e->ahead = NULL;
}

/* Words for a keyset that cannot be exported, when the store gave none. */
static const char *problem_words(int err)
{
	switch (err) {
	case -EINVAL:
		return "a member is not a regular file with a valid name";
	case -E2BIG:
		return "too many members";
	case -EFBIG:
		return "too large";
	default:
		return strerror(-err);
	}
}

int sc_note_problem(struct sealcache *sc, const char *name, int err, const char *why)
{
	char buf[1024] = "";
	struct entry *e;
	bool news;

	if (err == -ENOENT)
		return err; /* gone: nothing to report */
	pthread_mutex_lock(&sc->lock);
	e = sc_entry_get(sc, name);
	/* the same error after a change may have new words (a program's) */
	news = e && (e->bad != err || (err && e->why_stale));
	if (e && !news)
		e->examined = true;
	pthread_mutex_unlock(&sc->lock);
	if (!news)
		return err;
	if (err && !why && !sc->st->ops->why(sc->st->priv, name, buf, sizeof(buf)))
		buf[0] = '\0';
	if (err && !why)
		why = *buf ? buf : problem_words(err);
	/* Again under the lock: another thread may have told the same news
	 * meanwhile, and it is logged once. */
	pthread_mutex_lock(&sc->lock);
	news = e->bad != err || (err && e->why_stale && (!e->why || strcmp(e->why, why)));
	if (news) {
		e->bad = err;
		free(e->why);
		e->why = err ? strdup(why) : NULL;
	}
	e->why_stale = false;
	e->examined = true;
	pthread_mutex_unlock(&sc->lock);
	if (!news)
		return err;
	sc_mark_sync(sc, name);
	if (err)
		log_msg(LOG_WARNING, "keyset \"%s\" cannot be exported: %s", name, why);
	else
		log_msg(LOG_NOTICE, "keyset \"%s\" can be exported again", name);
	return err;
}

void sc_mark_sync(struct sealcache *sc, const char *name)
{
	struct entry *e;
	bool bad;

	if (!keyset_name_valid(name))
		return;
	/* Under mark_lock, the state read and the mark written are one
	 * step: two threads telling news of one keyset leave the last. */
	pthread_mutex_lock(&sc->mark_lock);
	pthread_mutex_lock(&sc->lock);
	e = sc_entry_find(sc, name);
	bad = e && e->examined && e->bad;
	pthread_mutex_unlock(&sc->lock);
	sc_mark_set(sc, name, bad);
	pthread_mutex_unlock(&sc->mark_lock);
}

int sc_entry_problem(struct sealcache *sc, const char *name, char *why, size_t size)
{
	struct entry *e;
	int err = 0;

	pthread_mutex_lock(&sc->lock);
	e = sc_entry_get(sc, name);
	if (e && !e->examined) {
		err = 1;
	} else if (e && e->bad) {
		err = e->bad;
		snprintf(why, size, "%s", e->why ? e->why : problem_words(err));
	}
	pthread_mutex_unlock(&sc->lock);
	return err;
}

void sealcache_hint(struct sealcache *sc, const char *name, char *buf, size_t size)
{
	meta_hint_for(sc->state, name, buf, size);
}

static uint64_t empty_hash;

static void hash_empty(void)
{
	empty_hash = sc_name_hash("");
}

/* Most keysets have no hint: its hash is taken once. */
static uint64_t no_hint_hash(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, hash_empty);
	return empty_hash;
}

/* The version of an export: the keyset's files plus the hint sealed with
 * them, since the hint is part of the plaintext. */
static uint64_t export_stamp(uint64_t files, const char *hint)
{
	return files ^ (*hint ? sc_name_hash(hint) : no_hint_hash());
}

int sc_export_stamp(struct sealcache *sc, const char *name, uint64_t *stamp)
{
	char hint[KEYSET_HINT_MAX + 1];
	uint64_t files;
	int ret;

	ret = sc->st->ops->stamp(sc->st->priv, name, &files);
	if (ret)
		return ret;
	meta_hint_for(sc->state, name, hint, sizeof(hint));
	*stamp = export_stamp(files, hint);
	return 0;
}

static void read_hint(struct sealcache *sc, const char *name, struct keyset *ks, bool say)
{
	if (meta_hint_for(sc->state, name, ks->hint, sizeof(ks->hint)) && say)
		log_msg(LOG_WARNING, "keyset \"%s\": the stored password hint has control characters; "
			"sealed without a hint (set it again with keyfsctl hint)", name);
}

int sc_read_keyset(struct sealcache *sc, const char *name, struct keyset *ks, bool say)
{
	int ret;

	ret = sc->st->ops->read(sc->st->priv, name, ks);
	if (!ret)
		read_hint(sc, name, ks, say);
	return ret;
}

int sc_read_stamped(struct sealcache *sc, const char *name, struct keyset *ks, uint64_t *stamp)
{
	uint64_t files;
	int ret;

	ret = store_read_stamped(sc->st, name, ks, &files);
	if (!ret) {
		read_hint(sc, name, ks, true);
		*stamp = export_stamp(files, ks->hint);
	}
	return ret;
}
