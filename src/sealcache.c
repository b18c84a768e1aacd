/* The sealed-export cache: entries, attributes, opens and password ids
 * (locking in sealcache_priv.h). Entries are created on first sight of a
 * keyset and live until the daemon stops. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/age.h"
#include "keyfs/armor.h"
#include "keyfs/bundle.h"
#include "keyfs/dirwalk.h"
#include "keyfs/log.h"
#include "keyfs/sealcache.h"
#include "sealcache_priv.h"
#include "keyfs/replace.h"
#include "keyfs/sealfile.h"
#include "keyfs/verifier.h"

static uint64_t hash_name(const char *name)
{
	uint64_t h;

	crypto_generichash((uint8_t *)&h, sizeof(h), (const uint8_t *)name, strlen(name), NULL, 0);
	return h;
}

uint64_t sealcache_ino(const char *name)
{
	/* High bit set: never collides with the fixed nodes 1..6. */
	return hash_name(name) | (1ULL << 63);
}

static bool own_password(struct sealcache *sc, const char *name)
{
	char key[KEYSET_NAME_MAX + 16], val[8];

	snprintf(key, sizeof(key), "own-password.%s", name);
	return !sc->st->ops->meta_get(sc->st->priv, key, val, sizeof(val));
}

/* Caller holds sc->lock. NULL only when out of memory. */
struct entry *entry_get(struct sealcache *sc, const char *name)
{
	struct entry **b = &sc->buckets[hash_name(name) % BUCKETS], *e;

	for (e = *b; e; e = e->next)
		if (!strcmp(e->name, name))
			return e;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->own_pw = own_password(sc, name);
	e->next = *b;
	*b = e;
	return e;
}

/* The id of the password that seals e's keyset: its own, else the
 * backup password's; NULL if that is not given. Caller holds sc->lock. */
const uint8_t *pwid_for(const struct sealcache *sc, const struct entry *e)
{
	size_t i;

	for (i = 0; i < sc->nkpw; i++)
		if (!strcmp(sc->kpw[i].name, e->name))
			return sc->kpw[i].id;
	/* A keyset with a password of its own is never sealed under the
	 * backup password, even while its own is not given yet. */
	return sc->have_pwid && !e->own_pw ? sc->pwid : NULL;
}

/* Is the cached seal the one to serve? Caller holds sc->lock. */
bool entry_current(const struct sealcache *sc, const struct entry *e, uint64_t stamp)
{
	const uint8_t *id = pwid_for(sc, e);

	return e->cached && e->stamp == stamp && e->logn == sc->cfg->work_factor && id &&
	       !memcmp(e->pwid, id, VERIFIER_ID_LEN);
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

int note_problem(struct sealcache *sc, const char *name, int err, const char *why)
{
	char buf[256] = "";
	struct entry *e;
	bool news;

	if (err == -ENOENT)
		return err; /* gone: nothing to report */
	pthread_mutex_lock(&sc->lock);
	e = entry_get(sc, name);
	news = e && e->bad != err;
	pthread_mutex_unlock(&sc->lock);
	if (!news)
		return err;
	if (err && !why && sc->st->ops->why && sc->st->ops->why(sc->st->priv, name, buf, sizeof(buf)))
		why = buf;
	if (err && (!why || !*why))
		why = problem_words(err);
	pthread_mutex_lock(&sc->lock);
	e->bad = err;
	free(e->why);
	e->why = err ? strdup(why) : NULL;
	pthread_mutex_unlock(&sc->lock);
	if (err)
		log_msg(LOG_WARNING, "keyset \"%s\" cannot be exported: %s", name, why);
	else
		log_msg(LOG_NOTICE, "keyset \"%s\" can be exported again", name);
	return err;
}

int sealcache_problem(struct sealcache *sc, const char *name, char *why, size_t size)
{
	struct entry *e;
	int err = 0;

	pthread_mutex_lock(&sc->lock);
	e = entry_get(sc, name);
	if (e && e->bad) {
		err = e->bad;
		snprintf(why, size, "%s", e->why ? e->why : problem_words(err));
	}
	pthread_mutex_unlock(&sc->lock);
	return err;
}

/* ---- cache files ---- */

/* Reads one cache header at start. A file of the first format is
 * rewritten in the current one, its sealed bytes untouched; a file that
 * names another keyset is never served for this one. */
static void load_cached(struct sealcache *sc, const char *name)
{
	struct sealfile h;
	struct entry *e;
	int fd, ret;

	fd = file_open_regular(sc->cfd, name, NULL, NULL);
	if (fd < 0)
		return;
	ret = sealfile_read(fd, &h);
	if (!ret && !h.name[0]) {
		ret = sealfile_upgrade(sc->cfd, name, fd, &h);
		if (ret)
			log_msg(LOG_WARNING, "seal cache of \"%s\": upgrading the file format: %s", name,
				strerror(-ret));
		ret = 0; /* its bytes are good either way */
	} else if (!ret && strcmp(h.name, name)) {
		log_msg(LOG_WARNING, "seal cache file \"%s\" holds keyset \"%s\": not served", name,
			h.name);
		ret = -EINVAL;
	}
	if (!ret && (e = entry_get(sc, name))) {
		e->cached = true;
		e->stamp = h.stamp;
		memcpy(e->pwid, h.pwid, VERIFIER_ID_LEN);
		e->logn = h.logn;
		e->sealed_at = h.sealed_at;
		e->len = h.len;
	}
	close(fd);
}

static int load_one(int dirfd, const char *name, const struct stat *st, void *arg)
{
	struct sealcache *sc = arg;

	(void)st;
	if (keyset_name_valid(name))
		load_cached(sc, name);
	else if (file_replace_is_temp(name))
		unlinkat(dirfd, name, 0); /* left by a crash */
	return 0;
}

/* Reads every cache header at start; bytes stay on disk until opened. */
static void load_cache(struct sealcache *sc)
{
	dir_each(sc->cfd, ".", load_one, sc);
}

/* ---- sealing ---- */

/* A stored hint as it may be sealed: a trailing line end (an editor's)
 * is dropped; any other control character makes it unusable, and the
 * keyset is then sealed without one rather than not at all. */
static bool hint_clean(char *h)
{
	size_t n = strlen(h);

	while (n && (h[n - 1] == '\n' || h[n - 1] == '\r'))
		h[--n] = '\0';
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)h[i] < 0x20 || h[i] == 0x7f)
			return false;
	return true;
}

static int hint_get(struct sealcache *sc, const char *name, char *buf, size_t size)
{
	char key[KEYSET_NAME_MAX + 8];

	snprintf(key, sizeof(key), "hint.%s", name);
	if (sc->st->ops->meta_get(sc->st->priv, key, buf, size) &&
	    sc->st->ops->meta_get(sc->st->priv, "hint", buf, size)) {
		buf[0] = '\0';
		return 0;
	}
	if (hint_clean(buf))
		return 0;
	buf[0] = '\0';
	return -EINVAL;
}

void sealcache_hint(struct sealcache *sc, const char *name, char *buf, size_t size)
{
	hint_get(sc, name, buf, size);
}

/* The version of an export: the keyset's files plus the hint sealed with
 * them, since the hint is part of the plaintext. */
int export_stamp(struct sealcache *sc, const char *name, uint64_t *stamp)
{
	char hint[KEYSET_HINT_MAX + 1];
	uint64_t files;
	int ret;

	ret = sc->st->ops->stamp(sc->st->priv, name, &files);
	if (ret)
		return ret;
	sealcache_hint(sc, name, hint, sizeof(hint));
	*stamp = files ^ hash_name(hint);
	return 0;
}

int read_keyset(struct sealcache *sc, const char *name, struct keyset *ks, bool say)
{
	int ret;

	ret = sc->st->ops->read(sc->st->priv, name, ks);
	if (!ret && hint_get(sc, name, ks->hint, sizeof(ks->hint)) && say)
		log_msg(LOG_WARNING, "keyset \"%s\": the stored password hint has control characters; "
			"sealed without a hint (set it again with keyfsctl hint)", name);
	return ret;
}

/* ---- life cycle ---- */

static int open_dirs(struct sealcache *sc, int state)
{
	sc->sfd = fcntl(state, F_DUPFD_CLOEXEC, 0);
	if (sc->sfd < 0)
		return -errno;
	if (mkdirat(sc->sfd, "cache", 0700) && errno != EEXIST)
		return -errno;
	sc->cfd = openat(sc->sfd, "cache", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return sc->cfd < 0 ? -errno : 0;
}

int sealcache_new(struct sealcache **out, struct store *st, struct vault *v, const struct config *c)
{
	struct sealcache *sc;
	int state, ret;

	state = store_state_fd(st);
	if (state < 0)
		return -EIO;
	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return -ENOMEM;
	sc->st = st;
	sc->v = v;
	sc->cfg = c;
	sc->cfd = sc->sfd = -1;
	pthread_mutex_init(&sc->lock, NULL);
	pthread_mutex_init(&sc->pw_lock, NULL);
	pthread_cond_init(&sc->changed, NULL);
	pthread_cond_init(&sc->work, NULL);
	ret = open_dirs(sc, state);
	if (ret) {
		sealcache_free(sc);
		return ret;
	}
	load_cache(sc);
	*out = sc;
	return 0;
}

void sealcache_free(struct sealcache *sc)
{
	struct entry *e, *next;
	size_t i;

	if (!sc)
		return;
	pthread_mutex_lock(&sc->lock);
	sc->stop = true;
	pthread_cond_broadcast(&sc->work);
	pthread_mutex_unlock(&sc->lock);
	for (i = 0; i < sc->nworkers; i++)
		pthread_join(sc->workers[i], NULL);
	for (i = 0; i < BUCKETS; i++) {
		for (e = sc->buckets[i]; e; e = next) {
			next = e->next;
			free(e->why);
			free(e);
		}
	}
	if (sc->cfd >= 0)
		close(sc->cfd);
	if (sc->sfd >= 0)
		close(sc->sfd);
	pthread_cond_destroy(&sc->work);
	pthread_cond_destroy(&sc->changed);
	pthread_mutex_destroy(&sc->pw_lock);
	pthread_mutex_destroy(&sc->lock);
	free(sc);
}

/* The id of the password vault_read_for(keyset) gives, from the verifier
 * file vpath; -ENOKEY if there is none. */
static int find_id(struct sealcache *sc, const char *keyset, const char *vpath,
		   uint8_t id[VERIFIER_ID_LEN], uint64_t *gen)
{
	struct age_pass pass;
	bool matched;
	int ret;

	ret = keyset ? vault_read_for(sc->v, keyset, &pass, gen) : vault_read_backup(sc->v, &pass, gen);
	if (ret)
		return ret;
	ret = verifier_id(sc->sfd, vpath, &pass, sc->cfg->work_factor, id, &matched);
	vault_read_end(sc->v);
	if (ret)
		log_msg(LOG_ERR, "password verifier %s: %s", vpath, strerror(-ret));
	else
		log_msg(LOG_INFO, "%s%s%s", keyset ? keyset : "", keyset ? ": " : "",
			matched ? "password matches the cached seals"
				: "new password: sealing again");
	return ret;
}

/* A keyset's own password may have been dropped ("forget --keyset"):
 * read the mark again for those that had one. Caller holds sc->lock. */
static void recheck_own(struct sealcache *sc)
{
	struct entry *e;
	size_t i;

	for (i = 0; i < BUCKETS; i++)
		for (e = sc->buckets[i]; e; e = e->next)
			if (e->own_pw)
				e->own_pw = own_password(sc, e->name);
}

int sealcache_password_changed(struct sealcache *sc)
{
	char names[VAULT_KEYSET_SLOTS][KEYSET_NAME_MAX + 1], vpath[KEYSET_NAME_MAX + 16];
	uint8_t id[VERIFIER_ID_LEN], kid[VAULT_KEYSET_SLOTS][VERIFIER_ID_LEN];
	size_t n, i, k = 0;
	uint64_t gen = 0, kgen, now;
	bool have;
	int ret;

	pthread_mutex_lock(&sc->pw_lock);
	ret = find_id(sc, NULL, "verifier", id, &gen);
	have = !ret;
	if (ret == -ENOKEY)
		gen = vault_generation(sc->v);
	else if (ret)
		goto out;
	n = vault_keysets(sc->v, names, VAULT_KEYSET_SLOTS);
	for (i = 0; i < n; i++) {
		snprintf(vpath, sizeof(vpath), "verifier.%.64s", names[i]);
		ret = find_id(sc, names[i], vpath, kid[k], &kgen);
		if (ret)
			goto out;
		memmove(names[k], names[i], sizeof(names[k]));
		k++;
	}
	/* Only current if nothing changed while the verifiers ran; asked
	 * before sc->lock is taken (lock order: vault, then sc->lock). */
	now = vault_generation(sc->v);
	pthread_mutex_lock(&sc->lock);
	recheck_own(sc);
	sc->have_pwid = have;
	memcpy(sc->pwid, have ? id : (const uint8_t[VERIFIER_ID_LEN]){ 0 }, VERIFIER_ID_LEN);
	for (i = 0; i < k; i++) {
		struct entry *e = entry_get(sc, names[i]);

		if (e)
			e->own_pw = true;
		strcpy(sc->kpw[i].name, names[i]);
		memcpy(sc->kpw[i].id, kid[i], VERIFIER_ID_LEN);
	}
	sc->nkpw = k;
	sc->pwid_gen = now == gen ? gen : 0;
	pthread_cond_broadcast(&sc->changed);
	pthread_mutex_unlock(&sc->lock);
	sealcache_queue_stale(sc);
	ret = 0;
out:
	pthread_mutex_unlock(&sc->pw_lock);
	return ret;
}

/* ---- what the filesystem asks ---- */

/* Reads the keyset once per version (stamp) for what takes no crypto to
 * know: the export's exact size, the keyset's time, its fingerprint. */
static int learn_version(struct sealcache *sc, const char *name, uint64_t stamp)
{
	char fpr[2 * BUNDLE_FPR_LEN + 1];
	struct keyset ks = { 0 };
	struct entry *e;
	size_t tar_len, size;
	int ret;

	ret = read_keyset(sc, name, &ks, false);
	if (!ret)
		ret = bundle_size(&ks, &tar_len);
	if (ret)
		goto out;
	size = armor_size(age_sealed_size(tar_len, sc->cfg->work_factor));
	bundle_fingerprint(&ks, fpr);
	pthread_mutex_lock(&sc->lock);
	e = entry_get(sc, name);
	if (e) {
		e->pred_stamp = stamp;
		e->pred_size = size;
		e->pred_mtime = keyset_mtime(&ks);
		memcpy(e->fpr, fpr, sizeof(fpr));
	}
	pthread_mutex_unlock(&sc->lock);
	ret = e ? 0 : -ENOMEM;
out:
	keyset_clear(&ks);
	return ret;
}

int sealcache_fingerprint(struct sealcache *sc, const char *name,
			  char hex[static 2 * BUNDLE_FPR_LEN + 1])
{
	struct entry *e;
	uint64_t stamp;
	int ret, tries = 0;
	bool known;

	ret = export_stamp(sc, name, &stamp);
	while (!ret) {
		pthread_mutex_lock(&sc->lock);
		e = entry_get(sc, name);
		known = e && e->pred_stamp == stamp;
		if (known)
			memcpy(hex, e->fpr, sizeof(e->fpr));
		pthread_mutex_unlock(&sc->lock);
		if (!e)
			return -ENOMEM;
		if (known)
			return 0;
		if (++tries > 3)
			return -EAGAIN; /* the keyset keeps changing under us */
		ret = learn_version(sc, name, stamp);
	}
	return ret;
}

static int attr_of(struct sealcache *sc, const char *name, uint64_t stamp, struct export_attr *a)
{
	struct entry *e;
	int ret;

	pthread_mutex_lock(&sc->lock);
	e = entry_get(sc, name);
	if (e && e->cached && e->stamp == stamp && e->logn == sc->cfg->work_factor &&
	    (!pwid_for(sc, e) || !memcmp(e->pwid, pwid_for(sc, e), VERIFIER_ID_LEN))) {
		/* current, or the seal a returning password will find */
		a->size = e->len;
		a->mtime = e->sealed_at;
		a->sealed = true;
		goto out;
	}
	if (e && e->pred_stamp != stamp) {
		pthread_mutex_unlock(&sc->lock);
		ret = learn_version(sc, name, stamp);
		if (ret)
			return ret;
		pthread_mutex_lock(&sc->lock);
	}
	if (e) {
		a->size = e->pred_size;
		a->sealed = pwid_for(sc, e) != NULL;
		a->mtime = a->sealed ? due_time(sc, e, stamp) : e->pred_mtime;
		if (pwid_for(sc, e))
			enqueue(sc, e); /* changed in the store: reseal */
	}
out:
	pthread_mutex_unlock(&sc->lock);
	return e ? 0 : -ENOMEM;
}

int sealcache_attr(struct sealcache *sc, const char *name, struct export_attr *a)
{
	uint64_t stamp;
	int ret;

	char why[160] = "";

	ret = export_stamp(sc, name, &stamp);
	if (!ret)
		ret = attr_of(sc, name, stamp, a);
	if (ret == -ENOMEM || ret == -EAGAIN)
		return ret; /* passing trouble, not the keyset's */
	/* Never export what this configuration could not import again. */
	if (!ret && a->size > sc->cfg->import_max_size) {
		snprintf(why, sizeof(why), "its export (%zu bytes) would be larger than import.max_size "
			 "(%zu bytes), so it could not be restored; raise import.max_size", a->size,
			 sc->cfg->import_max_size);
		ret = -EFBIG;
	}
	note_problem(sc, name, ret, *why ? why : NULL);
	if (ret)
		return -ENOENT; /* reported in status, never an entry that fails */
	a->ino = sealcache_ino(name);
	return 0;
}

/* Opens the cache file if it holds the seal of stamp under the current
 * password. Caller holds sc->lock; 1 if not (yet) current. */
static int open_current(struct sealcache *sc, struct entry *e, uint64_t stamp, struct seal **out)
{
	uint8_t pwid[VERIFIER_ID_LEN];
	struct sealfile h;
	struct seal *s;

	if (!entry_current(sc, e, stamp))
		return 1;
	memcpy(pwid, pwid_for(sc, e), VERIFIER_ID_LEN);
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = file_open_regular(sc->cfd, e->name, NULL, NULL);
	/* The header of the file actually opened decides, not the entry. */
	if (s->fd < 0 || sealfile_read(s->fd, &h) || strcmp(h.name, e->name) || h.stamp != stamp ||
	    h.logn != sc->cfg->work_factor || memcmp(h.pwid, pwid, VERIFIER_ID_LEN)) {
		if (s->fd >= 0)
			close(s->fd);
		free(s);
		e->cached = false;
		return 1;
	}
	s->off = (off_t)h.off;
	s->len = h.len;
	s->sealed_at = h.sealed_at;
	/* The page cache may keep what it holds only if these are the very
	 * bytes the previous open served. */
	s->unchanged = e->served_stamp == stamp && e->served_at == s->sealed_at &&
		       !memcmp(e->served_pwid, pwid, VERIFIER_ID_LEN);
	e->served_stamp = stamp;
	e->served_at = s->sealed_at;
	memcpy(e->served_pwid, pwid, VERIFIER_ID_LEN);
	*out = s;
	return 0;
}

static int wait_changed(struct sealcache *sc, time_t deadline)
{
	struct timespec ts = { deadline, 0 };

	return pthread_cond_timedwait(&sc->changed, &sc->lock, &ts) == ETIMEDOUT ? -ETIMEDOUT : 0;
}

int sealcache_open(struct sealcache *sc, const char *name, struct seal **out)
{
	time_t deadline = time(NULL) + OPEN_WAIT_SECONDS;
	struct entry *e;
	uint64_t stamp, gen;
	int ret;

	for (;;) {
		if (!vault_has_for(sc->v, name))
			return -ENOKEY;
		ret = export_stamp(sc, name, &stamp);
		if (ret)
			return ret;
		gen = vault_generation(sc->v); /* before sc->lock: see sealcache_priv.h */
		pthread_mutex_lock(&sc->lock);
		e = entry_get(sc, name);
		if (!e) {
			ret = -ENOMEM;
		} else if (sc->pwid_gen != gen || e->sealing) {
			/* the verifier or another thread is at work: wait */
			ret = wait_changed(sc, deadline);
			ret = ret ? ret : 1;
		} else if (!pwid_for(sc, e)) {
			ret = -ENOKEY; /* its own password is not given yet */
		} else {
			ret = open_current(sc, e, stamp, out);
			if (ret == 1) {
				/* ahead of the queue: seal it here and now */
				dequeue(sc, e);
				e->sealing = true;
				pthread_mutex_unlock(&sc->lock);
				ret = seal_entry(sc, e);
				if (ret)
					return ret;
				continue;
			}
		}
		pthread_mutex_unlock(&sc->lock);
		if (ret != 1)
			return ret;
	}
}

ssize_t seal_read(const struct seal *s, char *buf, size_t size, off_t off)
{
	ssize_t n;

	if (off < 0 || (size_t)off >= s->len)
		return 0;
	if (size > s->len - (size_t)off)
		size = s->len - (size_t)off;
	n = pread(s->fd, buf, size, s->off + off);
	return n < 0 ? -errno : n;
}

void seal_put(struct seal *s)
{
	if (!s)
		return;
	close(s->fd);
	free(s);
}

int sealcache_state(struct sealcache *sc, const char *name, bool *current, time_t *sealed_at)
{
	struct entry *e;
	uint64_t stamp;
	int ret;

	ret = export_stamp(sc, name, &stamp);
	if (ret)
		return ret;
	*current = false;
	*sealed_at = 0;
	pthread_mutex_lock(&sc->lock);
	e = entry_get(sc, name);
	if (e && e->cached) {
		*current = entry_current(sc, e, stamp);
		*sealed_at = e->sealed_at;
	}
	pthread_mutex_unlock(&sc->lock);
	return 0;
}

void sealcache_progress(struct sealcache *sc, size_t *workers, size_t *pending)
{
	struct entry *e;
	size_t i;

	pthread_mutex_lock(&sc->lock);
	*workers = sc->nworkers;
	*pending = 0;
	for (i = 0; i < BUCKETS; i++)
		for (e = sc->buckets[i]; e; e = e->next)
			*pending += e->queued || e->sealing;
	pthread_mutex_unlock(&sc->lock);
}
