/* What a listing of names tells of a keyset the first scan has not
 * examined yet: a keyset a run before left a seal of is listed, unless
 * that run marked it not exportable; any other is examined first. A
 * mount over a hundred thousand keysets lists their names at once,
 * while the first scan walks each keyset in the background.
 *
 * A keyset that stopped being exportable while keyfs was not running is
 * listed until it is examined, and its lookup then fails, as if it had
 * changed between the listing and the lookup. The marks of keysets known
 * not to be exportable (STATE/problems/NAME, empty files) are not
 * synced: one a crash lost is the same case. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keyfs/keyset.h"
#include "keyfs/log.h"
#include "keyfs/replace.h"
#include "keyfs/store.h"

#include "sealcache_priv.h"

static int cmp_hash(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int hashset_add(struct hashset *s, const char *name)
{
	uint64_t *grown;

	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 1024;
		grown = realloc(s->h, s->cap * sizeof(*s->h));
		if (!grown)
			return -ENOMEM;
		s->h = grown;
	}
	s->h[s->n++] = htab_hash(name);
	return 0;
}

static bool hashset_has(const struct hashset *s, const char *name)
{
	uint64_t h = htab_hash(name);

	return s->n && bsearch(&h, s->h, s->n, sizeof(h), cmp_hash);
}

static void hashset_free(struct hashset *s)
{
	free(s->h);
	*s = (struct hashset){ 0 };
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int marks_read(struct sealcache *sc)
{
	struct dirent *d;
	DIR *dir;
	int fd, ret = 0;

	fd = openat(sc->pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (!dir) {
		ret = -errno;
		close(fd);
		return ret;
	}
	while (!ret && (d = readdir(dir)))
		if (keyset_name_valid(d->d_name))
			ret = store_names_add(&sc->marked, &sc->nmarked, d->d_name);
	closedir(dir);
	if (sc->nmarked)
		qsort(sc->marked, sc->nmarked, sizeof(*sc->marked), cmp_names);
	return ret;
}

static bool marked(const struct sealcache *sc, const char *name)
{
	return sc->nmarked &&
	       bsearch(&name, sc->marked, sc->nmarked, sizeof(*sc->marked), cmp_names);
}

/* The keysets with a seal in the cache (names only: no stat, no read),
 * removing the temporary files a crash left. */
static int sealed_read(struct sealcache *sc)
{
	struct dirent *d;
	DIR *dir;
	int fd, ret = 0;

	fd = openat(sc->cfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (!dir) {
		ret = -errno;
		close(fd);
		return ret;
	}
	while (!ret && (d = readdir(dir))) {
		if (replace_is_temp(d->d_name))
			unlinkat(sc->cfd, d->d_name, 0);
		else if (keyset_name_valid(d->d_name))
			ret = hashset_add(&sc->sealed, d->d_name);
	}
	closedir(dir);
	if (sc->sealed.n)
		qsort(sc->sealed.h, sc->sealed.n, sizeof(*sc->sealed.h), cmp_hash);
	return ret;
}

void sc_known_load(struct sealcache *sc)
{
	/* Runs before any seal can write a temporary file of its own. */
	sc->known = !sealed_read(sc) && !marks_read(sc);
	if (!sc->known)
		sc_known_drop(sc); /* every keyset is examined when listed */
}

void sc_known_drop(struct sealcache *sc)
{
	hashset_free(&sc->sealed);
	store_names_free(sc->marked, sc->nmarked);
	sc->marked = NULL;
	sc->nmarked = 0;
	sc->known = false;
}

bool sc_known(const struct sealcache *sc, const char *name)
{
	return sc->known && hashset_has(&sc->sealed, name) && !marked(sc, name);
}

void sc_known_done(struct sealcache *sc)
{
	struct entry *e;
	char **gone = NULL;
	size_t i, n = 0;

	/* Marks of keysets found exportable since: a mark changes with a
	 * keyset's state, and one never bad this run changed none. */
	pthread_mutex_lock(&sc->lock);
	for (i = 0; i < sc->nmarked; i++) {
		e = sc_entry_find(sc, sc->marked[i]);
		if (e && e->examined && !e->bad)
			store_names_add(&gone, &n, sc->marked[i]); /* else the next start asks */
	}
	sc_known_drop(sc);
	pthread_mutex_unlock(&sc->lock);
	for (i = 0; i < n; i++)
		sc_known_mark(sc, gone[i], true);
	store_names_free(gone, n);
}

void sc_known_mark(struct sealcache *sc, const char *name, bool exportable)
{
	int fd;

	if (exportable) {
		if (unlinkat(sc->pfd, name, 0) && errno != ENOENT)
			log_msg(LOG_WARNING, "state: cannot remove %s/%s: %m", STATE_PROBLEMS, name);
		return;
	}
	fd = openat(sc->pfd, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		log_msg(LOG_WARNING, "state: cannot make %s/%s: %m", STATE_PROBLEMS, name);
	else
		close(fd);
}
