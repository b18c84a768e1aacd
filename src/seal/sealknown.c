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
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <sodium.h>
#include <stdio.h>
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
#include "sealkept.h"

uint64_t sc_name_hash(const char *name)
{
	uint64_t h;

	crypto_generichash((uint8_t *)&h, sizeof(h), (const uint8_t *)name, strlen(name), NULL, 0);
	return h;
}

static uint8_t known_key[crypto_shorthash_KEYBYTES];
static pthread_once_t known_key_once = PTHREAD_ONCE_INIT;

static void known_key_draw(void)
{
	randombytes_buf(known_key, sizeof(known_key));
}

/* The hash the sets below find a name by. They live in memory only, so
 * SipHash under a key drawn at start does: a tenth of BLAKE2b's cost on
 * a name (the first listing after a mount hashes every one), and no two
 * names collide but by chance. */
static uint64_t known_hash(const char *name)
{
	uint8_t out[crypto_shorthash_BYTES];
	uint64_t h;

	pthread_once(&known_key_once, known_key_draw);
	crypto_shorthash(out, (const uint8_t *)name, strlen(name), known_key);
	memcpy(&h, out, sizeof(h));
	return h;
}

static int cmp_hash(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The hash element i of an array of size-byte elements begins with. */
static uint64_t hash_at(const void *base, size_t i, size_t size)
{
	uint64_t v;

	memcpy(&v, (const char *)base + i * size, sizeof(v));
	return v;
}

/* The element of base (n elements of size bytes, sorted by the hash
 * each begins with) whose hash is h; NULL if none. The hashes are
 * uniform, so interpolating finds it in a few probes where bisecting
 * takes seventeen cache misses among a hundred thousand; every fourth
 * probe bisects all the same, so no spread of hashes makes it slow. */
static const void *hash_search(const void *base, size_t n, size_t size, uint64_t h)
{
	size_t lo = 0, hi = n, mid, probes = 0;
	uint64_t first, last, v;

	while (lo < hi) {
		first = hash_at(base, lo, size);
		last = hash_at(base, hi - 1, size);
		if (h < first || h > last)
			return NULL;
		mid = lo + (hi - lo) / 2;
		if (++probes % 4 && last > first)
			mid = lo + (size_t)((double)(h - first) / (double)(last - first) *
					    (double)(hi - 1 - lo));
		if (mid >= hi)
			mid = hi - 1;
		v = hash_at(base, mid, size);
		if (v == h)
			return (const char *)base + mid * size;
		if (v < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* bk over base, as hash_search() takes it: a bucket per element or so. */
static void buckets_make(struct buckets *bk, const void *base, size_t n, size_t size)
{
	size_t nb = 2, k, i = 0;
	unsigned bits = 1;

	free(bk->starts);
	bk->starts = NULL;
	if (n < 2 || n > UINT32_MAX)
		return;
	while (nb < n) {
		nb *= 2;
		bits++;
	}
	bk->starts = malloc((nb + 1) * sizeof(*bk->starts));
	if (!bk->starts)
		return; /* searched instead */
	bk->shift = 64 - bits;
	for (k = 0; k <= nb; k++) {
		while (i < n && hash_at(base, i, size) >> bk->shift < k)
			i++;
		bk->starts[k] = (uint32_t)i;
	}
}

/* As hash_search(), by bk's buckets where it has them. */
static const void *hash_find(const struct buckets *bk, const void *base, size_t n, size_t size,
			     uint64_t h)
{
	size_t i, k;

	if (!bk->starts)
		return hash_search(base, n, size, h);
	k = (size_t)(h >> bk->shift);
	for (i = bk->starts[k]; i < bk->starts[k + 1]; i++)
		if (hash_at(base, i, size) == h)
			return (const char *)base + i * size;
	return NULL;
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

/* By known_hash(): two names that collide, by a chance of one in 2^64
 * for any pair, only list the one not sealed before until it is
 * examined. */
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
	s->h[s->n++] = known_hash(name);
	return 0;
}

/* Whether the name of hash h (known_hash()) had a seal at start. */
static bool sealed(const struct hashset *s, uint64_t h)
{
	return hash_find(&s->b, s->h, s->n, sizeof(h), h) != NULL;
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

void sc_mark_set(struct sealcache *sc, const char *name, bool bad)
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

/* ---- the index of a clean stop ----
 *
 * Every entry's header, written at a clean stop with the times of cache/
 * then, and the lines of the index read at start whose keyset has no
 * entry: the next start takes a keyset's header from it instead of
 * reading its cache file, if cache/ has not changed since (a seal
 * written, kept or swept makes its times later) and the file is there. */

#define INDEX "cache.all"

static int cmp_index(const void *a, const void *b)
{
	return cmp_hash(&((const struct index_rec *)a)->h, &((const struct index_rec *)b)->h);
}

static bool index_line(const char *line, struct index_rec *r)
{
	char name[KEYSET_NAME_MAX + 1], ctag[17], pwid[2 * VERIFIER_ID_LEN + 1];
	long long at;
	size_t n;

	*r = (struct index_rec){ 0 };
	if (sscanf(line, "%64s %" SCNx64 " %16s %lld %zu %32s %d", name, &r->c.stamp, ctag, &at,
		   &r->c.len, pwid, &r->c.logn) != 7 || !keyset_name_valid(name) ||
	    sodium_hex2bin(r->c.pwid, VERIFIER_ID_LEN, pwid, strlen(pwid), NULL, &n, NULL) ||
	    n != VERIFIER_ID_LEN || r->c.len > UINT32_MAX || r->c.logn < -1 || r->c.logn > 64)
		return false; /* as sealfile.c reads a header; an entry's fields are small */
	_Static_assert(KEYSET_NAME_MAX == 64, "the %64s above");
	r->c.has_ctag = strcmp(ctag, "-") && sscanf(ctag, "%" SCNx64, &r->c.ctag) == 1;
	r->c.sealed_at = (time_t)at;
	r->h = known_hash(name);
	return true;
}

/* Whether it read a whole index that is current. */
static bool index_read(struct sealcache *sc)
{
	size_t cap = 0, count = 0, end = 0;
	struct index_rec *r;
	bool whole = false;
	char *line = NULL;
	FILE *in;

	in = dirwalk_cache_open(sc->state->fd, INDEX, "keyfs-cache-all 1", sc->cfd, &count);
	if (!in)
		return false;
	sc->index = calloc(count ? count : 1, sizeof(*sc->index));
	while (sc->index && getline(&line, &cap, in) > 0) {
		if (sscanf(line, "end %zu", &end) == 1) {
			whole = end == count && sc->nindex == count;
			break;
		}
		r = &sc->index[sc->nindex];
		if (sc->nindex == count || !index_line(line, r))
			break;
		sc->nindex++;
	}
	if (whole)
		qsort(sc->index, sc->nindex, sizeof(*sc->index), cmp_index);
	if (whole)
		sc->index_fd = fcntl(fileno(in), F_DUPFD_CLOEXEC, 0);
	free(line);
	fclose(in);
	if (!whole) {
		free(sc->index);
		sc->index = NULL;
		sc->nindex = 0;
	}
	return whole;
}

/* Drops the index's records of seals gone since it was written: a
 * record found is then a seal there is, at one search. Both sorted. */
static void index_keep_sealed(struct sealcache *sc)
{
	const uint64_t *h = sc->sealed.h, *end = h + sc->sealed.n;
	size_t i, n = 0;

	for (i = 0; i < sc->nindex; i++) {
		while (h < end && *h < sc->index[i].h)
			h++;
		if (h < end && *h == sc->index[i].h)
			sc->index[n++] = sc->index[i];
	}
	sc->nindex = n;
}

bool sc_index_get(const struct sealcache *sc, const char *name, struct cached *c)
{
	const struct index_rec *r;

	_Static_assert(offsetof(struct index_rec, h) == 0, "hash_find() reads the hash first");
	if (!sc->known || !sc->nindex)
		return false;
	r = hash_find(&sc->index_b, sc->index, sc->nindex, sizeof(*sc->index), known_hash(name));
	if (r)
		*c = r->c;
	return r != NULL;
}

/* An entry's name is name; the table is looked into here as its own code
 * does (sealentry.c, which calls into this file). */
static bool entry_named(const struct hnode *n, const void *name)
{
	return !strcmp(((const struct entry *)n)->name, name);
}

/* The lines of the index read at start whose keyset has no entry now:
 * its cache file is as the line says, for a seal written, kept or swept
 * makes an entry first. A stop before the first scan looked at every
 * keyset so leaves the next start the headers of the rest too. Writes
 * them to out, or only counts them if out is NULL. Caller holds
 * sc->lock. */
static size_t index_carry(struct sealcache *sc, FILE *out)
{
	char name[KEYSET_NAME_MAX + 1], *line = NULL;
	size_t cap = 0, n = 0;
	FILE *in = NULL;
	int fd;

	if (sc->index_fd < 0 || lseek(sc->index_fd, 0, SEEK_SET) < 0)
		return 0;
	fd = fcntl(sc->index_fd, F_DUPFD_CLOEXEC, 0);
	if (fd >= 0)
		in = fdopen(fd, "r");
	if (!in)
		goto out;
	fd = -1;
	if (getline(&line, &cap, in) <= 0) /* the head */
		goto out;
	while (getline(&line, &cap, in) > 0 && strncmp(line, "end ", 4)) {
		if (sscanf(line, "%64s", name) != 1 ||
		    htab_find(&sc->entries, htab_hash(name), entry_named, name))
			continue;
		if (out)
			fputs(line, out);
		n++;
	}
out:
	free(line);
	if (in)
		fclose(in);
	if (fd >= 0)
		close(fd);
	return n;
}

/* The workers are gone: the entries hold still. */
static int index_put(FILE *out, void *arg)
{
	char pwid[2 * VERIFIER_ID_LEN + 1];
	struct sealcache *sc = arg;
	struct entry *e = NULL;
	size_t pos = 0, n = 0, carried;

	pthread_mutex_lock(&sc->lock);
	/* the table itself, as the entry table's own code walks it */
	while ((e = (struct entry *)htab_next(&sc->entries, &pos, e ? &e->h : NULL)))
		n += e->cached && keyset_name_valid(e->name);
	carried = index_carry(sc, NULL);
	dirwalk_cache_head(out, "keyfs-cache-all 1", sc->cfd, n + carried);
	pos = 0;
	while ((e = (struct entry *)htab_next(&sc->entries, &pos, e ? &e->h : NULL))) {
		if (!e->cached || !keyset_name_valid(e->name))
			continue;
		sodium_bin2hex(pwid, sizeof(pwid), e->pwid, VERIFIER_ID_LEN);
		if (e->has_ctag)
			fprintf(out, "%s %016" PRIx64 " %016" PRIx64 " %lld %zu %s %d\n", e->name,
				e->stamp, e->ctag, (long long)e->sealed_at, (size_t)e->len, pwid, e->logn);
		else
			fprintf(out, "%s %016" PRIx64 " - %lld %zu %s %d\n", e->name, e->stamp,
				(long long)e->sealed_at, (size_t)e->len, pwid, e->logn);
	}
	/* a count unlike the head's, had the file failed: not whole */
	fprintf(out, "end %zu\n", n + index_carry(sc, out));
	pthread_mutex_unlock(&sc->lock);
	return 0;
}

void sc_index_close(struct sealcache *sc)
{
	if (sc->index_fd >= 0)
		close(sc->index_fd);
	sc->index_fd = -1;
}

void sc_index_write(struct sealcache *sc)
{
	int ret;

	ret = replace_stream(sc->state->fd, INDEX, index_put, sc);
	if (ret)
		log_msg(LOG_WARNING, "saving the seal cache's index %s: %s", INDEX, strerror(-ret));
}

/* ---- life cycle ---- */

int sc_known_load(struct sealcache *sc)
{
	struct sealed_walk w = { &sc->sealed, 0 };
	bool trusted;
	int ret;

	/* no seal was ever kept: none to look for at each seal */
	sc->kept = faccessat(sc->cfd, SEALKEPT_DIR, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
		   errno != ENOENT;
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
	/* Before the sweep below, which changes cache/ if a crash left
	 * temporary files, and then the index is not current anyway. */
	index_read(sc);
	/* Runs before any seal can write a temporary file of its own. */
	ret = dirwalk_types(sc->cfd, ".", sealed_one, &w);
	if (!ret && w.err)
		log_msg(LOG_WARNING, "seal cache: %s: every keyset is examined before it is listed",
			strerror(-w.err));
	if (!ret && !w.err && sc->sealed.n)
		qsort(sc->sealed.h, sc->sealed.n, sizeof(*sc->sealed.h), cmp_hash);
	sc->listed = !ret && !w.err;
	sc->known = sc->listed && trusted;
	if (!sc->listed)
		sc_known_drop(sc);
	if (!sc->known)
		sc_index_close(sc); /* not used: nothing of it to carry over */
	index_keep_sealed(sc);
	/* the first listing after a mount looks up every keyset in both */
	buckets_make(&sc->sealed.b, sc->sealed.h, sc->sealed.n, sizeof(*sc->sealed.h));
	buckets_make(&sc->index_b, sc->index, sc->nindex, sizeof(*sc->index));
	return ret;
}

void sc_known_drop(struct sealcache *sc)
{
	free(sc->sealed.h);
	free(sc->sealed.b.starts);
	sc->sealed = (struct hashset){ 0 };
	free(sc->index);
	sc->index = NULL;
	sc->nindex = 0;
	free(sc->index_b.starts);
	sc->index_b.starts = NULL;
	sc->known = false;
	sc->listed = false;
}

void sc_marks_free(struct sealcache *sc)
{
	store_names_free(sc->marks, sc->nmarks);
	sc->marks = NULL;
	sc->nmarks = 0;
}

bool sc_known(const struct sealcache *sc, const char *name)
{
	return sc->known && sealed(&sc->sealed, known_hash(name));
}

bool sc_known_absent(const struct sealcache *sc, const char *name)
{
	return sc->listed && !sealed(&sc->sealed, known_hash(name));
}

bool sc_marked(struct sealcache *sc, const char *name)
{
	bool marked;

	pthread_mutex_lock(&sc->mark_lock);
	marked = mark_find(sc, name) != NULL;
	pthread_mutex_unlock(&sc->mark_lock);
	return marked;
}
