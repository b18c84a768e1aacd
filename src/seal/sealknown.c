/* What a listing of names tells of a keyset not examined yet: one a run
 * before left a seal of is listed, unless it is marked not exportable;
 * any other is examined first. A mount over a hundred thousand keysets
 * lists their names at once, while the first scan walks each keyset in
 * the background.
 *
 * The marks are empty files, STATE/problems/NAME, kept in step with what
 * is known of each keyset: made when it is found not exportable, removed
 * when it is found exportable or is gone. They are not synced: a mark a
 * crash lost is as if the keyset had changed while keyfs was stopped, and
 * such a keyset, which stopped being exportable meanwhile, is listed until
 * it is examined; its lookup then fails, as after a change between a
 * listing and a lookup. A state directory without problems/ (made by an
 * earlier keyfs) has no marks to trust: every keyset is examined once. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/dirwalk.h"
#include "keyfs/keyset.h"
#include "keyfs/log.h"
#include "keyfs/replace.h"
#include "keyfs/state.h"
#include "keyfs/store.h"

#include "sealcache_priv.h"

static int cmp_hash(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- the keysets with a seal at start ---- */

struct sealed_walk {
	struct hashset *s;
	int err;
};

/* A cryptographic hash of the name (sealcache_ino()): no name can be
 * made to pass for a sealed one. */
static int sealed_one(int dirfd, const char *name, mode_t type, void *arg)
{
	struct sealed_walk *w = arg;
	struct hashset *s = w->s;
	uint64_t *grown;
	size_t cap;

	(void)type;
	if (replace_is_temp(name)) {
		unlinkat(dirfd, name, 0); /* left by a crash */
		return 0;
	}
	if (w->err || !keyset_name_valid(name))
		return 0; /* the sweep goes on */
	if (s->n == s->cap) {
		cap = s->cap ? 2 * s->cap : 1024;
		grown = realloc(s->h, cap * sizeof(*s->h));
		if (!grown) {
			w->err = -ENOMEM;
			return 0;
		}
		s->h = grown;
		s->cap = cap;
	}
	s->h[s->n++] = sealcache_ino(name);
	return 0;
}

static bool sealed(const struct hashset *s, const char *name)
{
	uint64_t h = sealcache_ino(name);

	return s->n && bsearch(&h, s->h, s->n, sizeof(h), cmp_hash);
}

/* ---- the marks ---- */

static int mark_one(int dirfd, const char *name, mode_t type, void *arg)
{
	struct sealcache *sc = arg;

	(void)dirfd;
	if (!S_ISREG(type) || !keyset_name_valid(name))
		return 0;
	return store_names_add(&sc->marks, &sc->nmarks, name);
}

/* Caller holds sc->mark_lock. */
static char **mark_find(struct sealcache *sc, const char *name)
{
	return sc->nmarks ? bsearch(&name, sc->marks, sc->nmarks, sizeof(*sc->marks), cmp_names) :
			    NULL;
}

/* Makes or removes name's mark, and its name in sc->marks. Caller holds
 * sc->mark_lock. */
static void mark_set(struct sealcache *sc, const char *name, bool bad)
{
	char **at = mark_find(sc, name);
	size_t i;
	int fd;

	if (!at == !bad)
		return;
	if (bad) {
		fd = openat(sc->pfd, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 || store_names_add(&sc->marks, &sc->nmarks, name)) {
			log_msg(LOG_WARNING, "state: cannot mark %s/%s", STATE_PROBLEMS, name);
		} else {
			store_names_sort(sc->marks, sc->nmarks);
		}
		if (fd >= 0)
			close(fd);
		return;
	}
	if (unlinkat(sc->pfd, name, 0) && errno != ENOENT)
		log_msg(LOG_WARNING, "state: cannot remove %s/%s: %m", STATE_PROBLEMS, name);
	i = (size_t)(at - sc->marks);
	free(*at);
	memmove(at, at + 1, (sc->nmarks - i - 1) * sizeof(*at));
	sc->nmarks--;
}

/* ---- life cycle ---- */

int sc_known_load(struct sealcache *sc)
{
	struct sealed_walk w = { &sc->sealed, 0 };
	bool trusted;
	int ret;

	/* Made here, not with the other state directories: one that was
	 * not there has no marks of a run before to trust. */
	trusted = mkdirat(sc->state->fd, STATE_PROBLEMS, 0700) && errno == EEXIST;
	sc->pfd = openat(sc->state->fd, STATE_PROBLEMS, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sc->pfd < 0)
		return -errno;
	ret = dirwalk_types(sc->pfd, ".", mark_one, sc);
	if (ret)
		return ret;
	store_names_sort(sc->marks, sc->nmarks);
	/* Runs before any seal can write a temporary file of its own. */
	ret = dirwalk_types(sc->cfd, ".", sealed_one, &w);
	if (!ret && w.err)
		log_msg(LOG_WARNING, "seal cache: %s: every keyset is examined before it is listed",
			strerror(-w.err));
	if (!ret && !w.err && sc->sealed.n)
		qsort(sc->sealed.h, sc->sealed.n, sizeof(*sc->sealed.h), cmp_hash);
	sc->known = !ret && !w.err && trusted;
	if (!sc->known)
		sc_known_drop(sc);
	return ret;
}

void sc_known_drop(struct sealcache *sc)
{
	free(sc->sealed.h);
	sc->sealed = (struct hashset){ 0 };
	sc->known = false;
}

void sc_marks_free(struct sealcache *sc)
{
	store_names_free(sc->marks, sc->nmarks);
	sc->marks = NULL;
	sc->nmarks = 0;
}

bool sc_known(const struct sealcache *sc, const char *name)
{
	return sc->known && sealed(&sc->sealed, name);
}

bool sc_marked(struct sealcache *sc, const char *name)
{
	bool marked;

	pthread_mutex_lock(&sc->mark_lock);
	marked = mark_find(sc, name) != NULL;
	pthread_mutex_unlock(&sc->mark_lock);
	return marked;
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
	mark_set(sc, name, bad);
	pthread_mutex_unlock(&sc->mark_lock);
}

void sc_known_done(struct sealcache *sc, bool whole)
{
	struct entry *e;
	size_t i;

	pthread_mutex_lock(&sc->mark_lock);
	pthread_mutex_lock(&sc->lock);
	sc_known_drop(sc);
	/* Walked backwards: mark_set() removes from sc->marks. A keyset the
	 * whole scan did not find is gone; one examined is known. */
	for (i = sc->nmarks; i-- > 0;) {
		e = sc_entry_find(sc, sc->marks[i]);
		if ((!e && whole) || (e && e->examined && !e->bad)) {
			pthread_mutex_unlock(&sc->lock);
			mark_set(sc, sc->marks[i], false);
			pthread_mutex_lock(&sc->lock);
		}
	}
	pthread_mutex_unlock(&sc->lock);
	pthread_mutex_unlock(&sc->mark_lock);
}
