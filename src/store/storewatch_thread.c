/* The store watcher's thread: it keeps the list of keysets, applies the
 * kernel's events to them (storewatch_watch.c has the watches) and
 * rescans where events do not come (see storewatch.h). */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "keyfs/log.h"
#include "keyfs/pool.h"

#include "storewatch_priv.h"

/* Rescans take at most a tenth of the time, at least this far apart. */
#define RESCAN_MIN_MS 5000

/* ---- the list ---- */

/* Lists the store again: new keysets get nodes and watches, gone ones
 * lose theirs; both are told. False if the list is not to be trusted:
 * a keyset was put meanwhile, maybe after the store was read. */
static bool relist_once(struct storewatch *w)
{
	struct wnode *n, **fresh = NULL;
	struct hnode *h, *next;
	size_t k, nf = 0, nl = 0, pos = 0;
	const char **list;
	uint64_t puts;
	char **names;
	size_t count;
	bool same;

	pthread_mutex_lock(&w->lock);
	puts = w->puts;
	pthread_mutex_unlock(&w->lock);
	if (w->inner.ops->list(w->inner.priv, &names, &count))
		return true; /* the next event or rescan tries again */
	fresh = calloc(count ? count : 1, sizeof(*fresh));
	/* the list borrows the nodes' names: one copy of each name */
	list = calloc(count ? count : 1, sizeof(*list));
	pthread_mutex_lock(&w->lock);
	for (h = htab_next(&w->nodes, &pos, NULL); h; h = htab_next(&w->nodes, &pos, h))
		((struct wnode *)h)->seen = false;
	for (k = 0; k < count; k++) {
		n = sw_wnode_find(w, names[k]);
		if (!n && (n = sw_wnode_add(w, names[k]))) {
			n->pending = w->list_valid; /* the first list is no change */
			if (fresh)
				fresh[nf++] = n;
		}
		if (n)
			n->seen = true;
		if (n && list)
			list[nl++] = n->name;
	}
	free(w->names);
	w->names = list;
	w->n = nl;
	/* read after every store directory event applied: this thread
	 * applies them, and none came while it listed */
	w->relist_due = false;
	/* else watches are missing, or a keyset put meanwhile: list again */
	same = puts == w->puts;
	w->list_valid = fresh && list && nl == count && same;
	pthread_mutex_unlock(&w->lock);
	store_list_free(names);
	/* Gone ones: only this thread frees nodes, so no lock is needed
	 * to walk the table, only to change it. */
	pos = 0;
	for (h = htab_next(&w->nodes, &pos, NULL); h; h = next) {
		next = htab_next(&w->nodes, &pos, h);
		n = (struct wnode *)h;
		if (n->seen)
			continue;
		sw_unwatch_keyset(w, n);
		pthread_mutex_lock(&w->lock);
		htab_del(&w->nodes, h);
		pthread_mutex_unlock(&w->lock);
		if (w->fn) /* after: a stamp asked from it finds no keyset */
			w->fn(w->arg, n->name);
		sw_wnode_free(n);
	}
	/* Watched and stamped from the start of the list, ahead of a
	 * listing made right after the mount. */
	sw_stamp_fresh(w, fresh, nf);
	free(fresh);
	return same;
}

/* The event of a keyset put may have been read with the one that made
 * this relist: a few more tries, not one event more to wait for. */
static void relist(struct storewatch *w)
{
	int tries = 3;

	while (!relist_once(w) && --tries)
		;
}

/* ---- telling the listener ---- */

/* Tells the listener each pending keyset, outside the lock (it asks for
 * stamps). */
static void tell(struct storewatch *w)
{
	struct hnode *h;
	char **names = NULL;
	size_t n = 0, k, pos = 0;

	pthread_mutex_lock(&w->lock);
	for (h = htab_next(&w->nodes, &pos, NULL); h; h = htab_next(&w->nodes, &pos, h)) {
		struct wnode *node = (struct wnode *)h;

		if (!node->pending)
			continue;
		if (store_names_add(&names, &n, node->name))
			break; /* stays pending: the next round tells it */
		node->pending = false;
	}
	pthread_mutex_unlock(&w->lock);
	for (k = 0; k < n && w->fn; k++)
		w->fn(w->arg, names[k]);
	store_names_free(names, n);
}

/* ---- rescans ---- */

/* Walks every keyset and keeps the stamps that changed (the listener is
 * told); the cache stays valid in between only while polling. After a
 * queue overflow, the watches are renewed too (new directories whose
 * events were lost). */
static void rescan(struct storewatch *w, bool rewatch)
{
	struct wnode *n;
	uint64_t base;
	uint32_t gen;
	size_t k, count;
	char **names;
	int ret;

	relist(w);
	pthread_mutex_lock(&w->lock);
	names = NULL;
	ret = w->list_valid ? store_list_pack(w->names, w->n, &names) : -EAGAIN;
	count = ret ? 0 : w->n;
	pthread_mutex_unlock(&w->lock);
	for (k = 0; k < count; k++) {
		pthread_mutex_lock(&w->lock);
		n = sw_wnode_find(w, names[k]);
		gen = n ? n->gen : 0;
		pthread_mutex_unlock(&w->lock);
		if (!n)
			continue;
		if (rewatch)
			sw_watch_keyset(w, n, "");
		ret = w->inner.ops->stamp(w->inner.priv, names[k], &base);
		pthread_mutex_lock(&w->lock);
		if (n->gen == gen && (ret != n->err || !n->have_base || (!ret && base != n->base))) {
			n->base_gen = gen;
			n->base = n->stamp = base;
			n->have_base = !ret;
			n->err = ret;
			n->pending = true;
		}
		n->valid = n->gen == gen && (n->have_base || n->err) && (w->polling || n->watched);
		pthread_mutex_unlock(&w->lock);
	}
	store_list_free(names);
}

/* ---- events ---- */

/* One event: its keyset is marked changed; *relist if the store
 * directory's entries changed, *overflow if events were lost. */
static void on_event(struct storewatch *w, const struct inotify_event *ev, bool *list,
		     bool *overflow)
{
	char rel[PATH_MAX];
	struct wdir *d;
	struct wnode *n = NULL;

	if (ev->mask & IN_Q_OVERFLOW) {
		*overflow = true;
		return;
	}
	if (ev->wd == w->root_wd) {
		if (!ev->len || !keyset_name_valid(ev->name))
			return; /* keyfs' own state directory, stray files */
		*list = true;
		pthread_mutex_lock(&w->lock);
		w->relist_due = true;
		n = sw_wnode_find(w, ev->name);
		if (n)
			sw_wnode_touch(n);
		pthread_mutex_unlock(&w->lock);
		/* A listed name whose directory went, or is another one now
		 * (rm -r and mkdir, or mv over it): its watches were on the old
		 * directory. Only this thread frees nodes: n stays valid. */
		if (n) {
			sw_unwatch_keyset(w, n);
			if (ev->mask & (IN_CREATE | IN_MOVED_TO))
				sw_watch_keyset(w, n, "");
		}
		return;
	}
	d = sw_wdir_find(w, ev->wd);
	n = d ? d->n : sw_top_find(w, ev->wd);
	if (!n)
		return;
	if (ev->mask & IN_IGNORED) {
		if (d) {
			sw_wdir_drop(w, d);
			return;
		}
		/* the top itself is gone: walked until its name is made anew */
		sw_top_drop(w, n);
		pthread_mutex_lock(&w->lock);
		n->watched = false;
		sw_wnode_touch(n);
		pthread_mutex_unlock(&w->lock);
		return;
	}
	pthread_mutex_lock(&w->lock);
	sw_wnode_touch(n);
	pthread_mutex_unlock(&w->lock);
	if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO)) && ev->len) {
		if (d)
			snprintf(rel, sizeof(rel), "%s/%s", d->rel, ev->name);
		else
			snprintf(rel, sizeof(rel), "%s", ev->name);
		sw_watch_keyset(w, n, rel);
	}
}

/* Reads what the kernel queued and applies it. Marked as reading
 * meanwhile: events out of the kernel's queue and not yet applied are
 * still pending for stamp() (events_pending()). */
static void read_events(struct storewatch *w, bool *list, bool *overflow)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	ssize_t len;
	char *p;

	pthread_mutex_lock(&w->lock);
	w->reading = true;
	pthread_mutex_unlock(&w->lock);
	while ((len = read(w->ifd, buf, sizeof(buf))) > 0) {
		for (p = buf; p < buf + len; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			on_event(w, ev, list, overflow);
		}
	}
	pthread_mutex_lock(&w->lock);
	w->reading = false;
	pthread_mutex_unlock(&w->lock);
}


static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


void *storewatch_main(void *arg)
{
	struct storewatch *w = arg;
	int64_t next_scan, took;
	struct pollfd p[2];
	bool list, overflow;
	int timeout;

	thread_name("keyfs-watch");
	sw_watch_root(w);
	relist(w);
	if (w->inner.ops->settled)
		w->inner.ops->settled(w->inner.priv);
	if (w->ready_fn)
		w->ready_fn(w->ready_arg);
	next_scan = now_ms() + RESCAN_MIN_MS;
	p[0] = (struct pollfd){ .fd = w->efd, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = w->ifd, .events = POLLIN };
	for (;;) {
		timeout = w->polling ? (int)(next_scan > now_ms() ? next_scan - now_ms() : 0) : -1;
		if (poll(p, w->ifd >= 0 ? 2 : 1, timeout) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		list = overflow = false;
		if (w->ifd >= 0 && p[1].revents)
			read_events(w, &list, &overflow);
		if (overflow)
			log_msg(LOG_NOTICE, "store watcher: events were lost; rescanning the store");
		if (overflow || (w->polling && now_ms() >= next_scan)) {
			took = now_ms();
			rescan(w, overflow);
			took = now_ms() - took;
			next_scan = now_ms() + (took * 10 > RESCAN_MIN_MS ? took * 10 : RESCAN_MIN_MS);
		} else if (list) {
			relist(w);
		}
		tell(w);
	}
	sw_unwatch_all(w);
	return NULL;
}
