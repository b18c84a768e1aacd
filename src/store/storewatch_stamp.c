/* A keyset's version stamp in the store watcher: from memory while its
 * node is valid and no change waits, else walked in the store and kept
 * when nothing can have changed unseen (see storewatch_priv.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "keyfs/bundle.h"

#include "storewatch_priv.h"

/* The watcher whose queue this thread found empty when its batch began
 * (sw_wnode_batch()): the kernel is not asked again until the batch ends. */
static __thread const struct storewatch *batch_checked;

/* Whether changes wait that the node table does not show yet: events
 * the kernel queued, ones the thread read and is applying, or a store
 * directory event whose relist is to come. A change made before a call
 * is in one of them or applied (the kernel queues its event before the
 * writer's call returns), so a call that finds none pending may answer
 * from memory what a walk would say. Caller holds w->lock, which the
 * thread takes to start reading: the queue cannot move into the thread
 * unseen while it is held. */
static bool events_pending(struct storewatch *w)
{
	int queued = 0;

	if (w->reading || w->relist_due)
		return true;
	if (w->qfd < 0)
		return false; /* no events: rescans keep the table */
	/* cannot tell: as if some waited */
	return ioctl(w->qfd, FIONREAD, &queued) || queued > 0;
}

/* Whether memory may answer now: events_pending(), but in a batch the
 * kernel's queue as it was when the batch began. Caller holds w->lock. */
bool sw_answer_now(struct storewatch *w)
{
	if (batch_checked == w)
		return !w->reading && !w->relist_due;
	return !events_pending(w);
}

/* A change made before the batch began is applied or queued then; one
 * made during it may or may not be seen, as with any listing. */
void sw_wnode_batch(struct storewatch *w, bool on)
{
	batch_checked = NULL;
	if (!on)
		return;
	pthread_mutex_lock(&w->lock);
	if (!events_pending(w))
		batch_checked = w;
	pthread_mutex_unlock(&w->lock);
}

/* A walk that sees the very stamp of before although an event came:
 * the content may have been rewritten within one timestamp tick with
 * the same size. The content decides: base with ks's folded in. */
static uint64_t content_stamp(uint64_t base, const struct keyset *ks)
{
	char hex[2 * BUNDLE_FPR_LEN + 1];
	uint64_t h;

	bundle_fingerprint(ks, hex);
	h = htab_hash(hex);
	return base ^ (h ? h : 1);
}

struct snap {
	bool known, watched;
	uint32_t gen, base_gen;
	uint64_t base, stamp;
	bool have_base;
};

/* Walks name's stamp, reading the keyset into ks with it if ks; what
 * was known before (s) tells whether an event came since and whether
 * the walk alone says anything new. */
static int walk_stamp(struct storewatch *w, const char *name, const struct snap *s,
		      struct keyset *ks, uint64_t *base, uint64_t *stamp)
{
	struct keyset content = { 0 };
	int ret;

	ret = ks ? store_read_stamped(&w->inner, name, ks, base) :
	      w->inner.ops->stamp(w->inner.priv, name, base);
	if (ret)
		return ret;
	*stamp = *base;
	if (!s->have_base || *base != s->base)
		return 0;
	if (s->gen == s->base_gen) {
		*stamp = s->stamp; /* nothing new: keep it */
		return 0;
	}
	if (ks)
		*stamp = content_stamp(*base, ks);
	else if (!(ret = w->inner.ops->read(w->inner.priv, name, &content)))
		*stamp = content_stamp(*base, &content);
	keyset_clear(&content);
	return ret;
}

static struct snap snap_of(const struct wnode *n)
{
	return (struct snap){ true, n->watched, n->gen, n->base_gen, n->base, n->stamp,
			      n->have_base };
}

/* Keeps a walk of n if no event came during it, and one would have
 * come from its start: a watch added midway says nothing of what
 * changed before it, after the walk read it. Nor while events wait
 * (pending): they may be of changes this walk saw already, and applied
 * after it they would make the next walk fold the content into the
 * stamp, a version no walk after a restart finds again, for files that
 * did not change. Caller holds w->lock. */
static void keep(struct storewatch *w, struct wnode *n, const struct snap *s, bool pending,
		 uint64_t base, uint64_t stamp, int err)
{
	if (!s->known || n->gen != s->gen || pending || !((s->watched && n->watched) || w->polling))
		return;
	n->base_gen = s->gen;
	n->have_base = !err;
	n->base = base;
	n->stamp = stamp;
	n->err = err;
	n->valid = true;
}

int sw_wnode_stamp(struct storewatch *w, const char *name, struct keyset *ks, uint64_t *stamp)
{
	struct snap s = { 0 };
	struct wnode *n;
	uint64_t base = 0;
	int ret;

	pthread_mutex_lock(&w->lock);
	n = sw_wnode_find(w, name);
	/* From memory: the node's stamp, or not a keyset. Unless a file was
	 * just written: its event may not be applied yet. */
	if ((n ? n->valid : w->list_valid) && sw_answer_now(w)) {
		if (n)
			*stamp = n->stamp;
		ret = n ? n->err : -ENOENT;
		pthread_mutex_unlock(&w->lock);
		/* read after the stamp, as store_read_stamped() wants */
		return ret || !ks ? ret : w->inner.ops->read(w->inner.priv, name, ks);
	}
	if (n)
		s = snap_of(n);
	pthread_mutex_unlock(&w->lock);
	ret = walk_stamp(w, name, &s, ks, &base, stamp);
	pthread_mutex_lock(&w->lock);
	n = sw_wnode_find(w, name);
	if (n && !w->stamped) {
		snprintf(w->walked, sizeof(w->walked), "%s", name);
		w->nwalked++;
	}
	/* A read fails where a stamp would not (a file that kept
	 * changing, an xattr): none of its failures is kept. */
	if (n && (!ks || !ret))
		keep(w, n, &s, events_pending(w), base, *stamp, ret);
	pthread_mutex_unlock(&w->lock);
	return ret;
}

/* Where a listing is in fresh (sorted as listed): the first keyset
 * after the one it walked last. */
static size_t listing_at(struct wnode *const *fresh, size_t nf, const char *walked)
{
	size_t lo = 0, hi = nf, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (strcmp(fresh[mid]->name, walked) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* How far past a listing this thread goes on: about a readdirplus
 * reply's worth of keysets, which the listing walks meanwhile. */
#define LEAD 32

/* Keysets walked between two looks at the lock and the event queue. */
#define BATCH 16

/* Keysets watched past the next batch: a listing that passes this
 * thread walks watched ones, whose walks are kept. */
#define WATCH_LEAD 256

struct batch {
	struct wnode *n[BATCH];
	struct snap s[BATCH];
	uint64_t base[BATCH], stamp[BATCH];
	int err[BATCH];
	size_t len;
};

/* Where the next batch begins: at k, or in the first round past where
 * a listing walked last if that is further. Caller holds w->lock. */
static size_t batch_start(const struct storewatch *w, struct wnode *const *fresh, size_t nf,
			  size_t k, bool first)
{
	size_t at;

	if (!first || !w->nwalked)
		return k;
	at = listing_at(fresh, nf, w->walked) + LEAD;
	return at > k ? at : k;
}

/* Takes into b up to BATCH keysets of fresh from batch_start() on that
 * are still to be stamped. Caller holds w->lock. */
static void batch_take(struct storewatch *w, struct wnode *const *fresh, size_t nf, size_t *k,
		       bool first, struct batch *b)
{
	*k = batch_start(w, fresh, nf, *k, first);
	for (b->len = 0; *k < nf && b->len < BATCH; (*k)++)
		if (!fresh[*k]->valid) {
			b->n[b->len] = fresh[*k];
			b->s[b->len++] = snap_of(fresh[*k]);
		}
}

/* How far fresh is to be watched before the next batch is taken: a
 * batch and WATCH_LEAD past where it begins. Caller holds w->lock. */
static size_t watch_to(const struct storewatch *w, struct wnode *const *fresh, size_t nf,
		       size_t k, bool first)
{
	size_t at = batch_start(w, fresh, nf, k, first) + BATCH + WATCH_LEAD;

	return at < nf ? at : nf;
}

/* Watches and stamps each of fresh, sorted as listed, that no one else
 * stamped, from the start: a listing right after the mount goes the same
 * way, one keyset at a time, and answers from memory what this thread
 * stamped before it got there. When the listing walks one itself, it is
 * ahead: this thread goes on past it. A second round takes what was
 * passed over and not walked by the listing.
 *
 * Each is watched a little before it is stamped, not all first: a walk
 * is kept only once a watch would tell of a change, and while this
 * thread watched all of a large store, a listing right after the mount
 * walked a quarter of it itself.
 *
 * Walked a batch at a time, the event queue asked once after each: only
 * this thread reads it, and it is not reading now, so a queue empty
 * after the batch's last walk was empty after each of its walks. */
void sw_stamp_fresh(struct storewatch *w, struct wnode *const *fresh, size_t nf)
{
	size_t k, i, watched = 0, to;
	struct batch b;
	bool pending;
	int round;

	for (round = 0; round < 2; round++) {
		k = 0;
		do {
			pthread_mutex_lock(&w->lock);
			to = watch_to(w, fresh, nf, k, !round);
			pthread_mutex_unlock(&w->lock);
			for (; watched < to; watched++)
				sw_watch_keyset(w, fresh[watched], "");
			pthread_mutex_lock(&w->lock);
			batch_take(w, fresh, nf, &k, !round, &b);
			pthread_mutex_unlock(&w->lock);
			for (i = 0; i < b.len; i++)
				b.err[i] = walk_stamp(w, b.n[i]->name, &b.s[i], NULL, &b.base[i],
						      &b.stamp[i]);
			pthread_mutex_lock(&w->lock);
			pending = events_pending(w);
			for (i = 0; i < b.len; i++)
				keep(w, b.n[i], &b.s[i], pending, b.base[i], b.stamp[i], b.err[i]);
			pthread_mutex_unlock(&w->lock);
		} while (b.len);
	}
	pthread_mutex_lock(&w->lock);
	w->stamped = true;
	pthread_mutex_unlock(&w->lock);
}
