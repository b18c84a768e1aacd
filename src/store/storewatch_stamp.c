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
 * the same size. The content decides. */
static int content_stamp(struct storewatch *w, const char *name, uint64_t base, uint64_t *stamp)
{
	char hex[2 * BUNDLE_FPR_LEN + 1];
	struct keyset ks = { 0 };
	uint64_t h;
	int ret;

	ret = w->inner.ops->read(w->inner.priv, name, &ks);
	if (!ret) {
		bundle_fingerprint(&ks, hex);
		h = htab_hash(hex);
		*stamp = base ^ (h ? h : 1);
	}
	keyset_clear(&ks);
	return ret;
}

struct snap {
	bool known, watched;
	uint32_t gen, base_gen;
	uint64_t base, stamp;
	bool have_base;
};

/* Walks name's stamp; what was known before (s) tells whether an event
 * came since and whether the walk alone says anything new. */
static int walk_stamp(struct storewatch *w, const char *name, const struct snap *s,
		      uint64_t *base, uint64_t *stamp)
{
	int ret;

	ret = w->inner.ops->stamp(w->inner.priv, name, base);
	if (ret)
		return ret;
	*stamp = *base;
	if (s->have_base && *base == s->base) {
		if (s->gen != s->base_gen)
			return content_stamp(w, name, *base, stamp);
		*stamp = s->stamp; /* nothing new: keep it */
	}
	return 0;
}

int sw_wnode_stamp(struct storewatch *w, const char *name, bool own, uint64_t *stamp)
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
		return ret;
	}
	if (n)
		s = (struct snap){ true, n->watched, n->gen, n->base_gen, n->base, n->stamp,
				   n->have_base };
	pthread_mutex_unlock(&w->lock);
	ret = walk_stamp(w, name, &s, &base, stamp);
	pthread_mutex_lock(&w->lock);
	n = sw_wnode_find(w, name);
	if (n && !own && !w->stamped) {
		snprintf(w->walked, sizeof(w->walked), "%s", name);
		w->nwalked++;
	}
	/* Kept only if no event came during the walk, and one would have
	 * come from its start: a watch added midway says nothing of what
	 * changed before it, after the walk read it. Nor while events
	 * wait: they may be of changes this walk saw
	 * already, and applied after it they would make the next walk fold
	 * the content into the stamp, a version no walk after a restart
	 * finds again, for files that did not change. */
	if (n && s.known && n->gen == s.gen && ((s.watched && n->watched) || w->polling) &&
	    !events_pending(w)) {
		n->base_gen = s.gen;
		n->have_base = !ret;
		n->base = base;
		n->stamp = *stamp;
		n->err = ret;
		n->valid = true;
	}
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

/* Stamps each of fresh, watched and sorted as listed, that no one else
 * stamped, from the start: a listing right after the mount goes the same
 * way, one keyset at a time, and answers from memory what this thread
 * stamped before it got there. When the listing walks one itself, it is
 * ahead: this thread goes on past it. A second round takes what was
 * passed over and not walked by the listing. */
void sw_stamp_fresh(struct storewatch *w, struct wnode *const *fresh, size_t nf)
{
	uint64_t seen = 0, stamp;
	size_t k, at;
	bool valid;
	int round;

	for (round = 0; round < 2; round++) {
		for (k = 0; k < nf; k++) {
			pthread_mutex_lock(&w->lock);
			if (!round && w->nwalked != seen) {
				seen = w->nwalked;
				at = listing_at(fresh, nf, w->walked) + LEAD;
				k = at > k ? at : k;
			}
			valid = k < nf && fresh[k]->valid;
			pthread_mutex_unlock(&w->lock);
			if (k >= nf)
				break;
			if (!valid)
				sw_wnode_stamp(w, fresh[k]->name, true, &stamp);
		}
	}
	pthread_mutex_lock(&w->lock);
	w->stamped = true;
	pthread_mutex_unlock(&w->lock);
}
