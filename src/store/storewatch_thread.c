/* The store watcher's thread: inotify watches on the store directory and
 * on every directory of every keyset, and rescans where events do not
 * come (see storewatch.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "keyfs/dirwalk.h"
#include "keyfs/log.h"

#include "storewatch_priv.h"

#define ROOT_MASK (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR)
/* Directories are opened O_NOFOLLOW and watched through /proc/self/fd,
 * a link to follow: no IN_DONT_FOLLOW. */
#define KEYSET_MASK (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | \
		     IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_ONLYDIR)
/* Rescans take at most a tenth of the time, at least this far apart. */
#define RESCAN_MIN_MS 5000

/* ---- watches (thread only) ---- */

/* The hash is the watch descriptor itself: the same hash, the same watch. */
static bool same_wd(const struct hnode *h, const void *wd)
{
	(void)h;
	(void)wd;
	return true;
}

static struct wdir *wdir_find(struct storewatch *w, int wd)
{
	return (struct wdir *)htab_find(&w->wds, (uint64_t)wd, same_wd, NULL);
}

/* The keyset whose top directory is watched as wd; NULL if none. */
static struct wnode *top_find(struct storewatch *w, int wd)
{
	struct hnode *h = htab_find(&w->tops, (uint64_t)wd, same_wd, NULL);

	return h ? (struct wnode *)((char *)h - offsetof(struct wnode, top)) : NULL;
}

static void top_drop(struct storewatch *w, struct wnode *n)
{
	htab_del(&w->tops, &n->top);
	n->top.hash = 0;
}

static void wdir_drop(struct storewatch *w, struct wdir *d)
{
	struct wdir **p;

	for (p = &d->n->dirs; *p; p = &(*p)->sib) {
		if (*p == d) {
			*p = d->sib;
			break;
		}
	}
	htab_del(&w->wds, &d->h);
	free(d);
}

/* Watches the directory dfd (rel below keyset n's top); -errno. */
static int watch_one(struct storewatch *w, int dfd, struct wnode *n, const char *rel)
{
	char path[64];
	struct wdir *d;
	int wd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", dfd);
	wd = inotify_add_watch(w->ifd, path, KEYSET_MASK);
	if (wd < 0)
		return -errno;
	if (wdir_find(w, wd) || top_find(w, wd))
		return 0; /* the same directory, seen twice */
	if (!*rel) {
		/* inotify numbers watches from 1: the hash 0 says none */
		n->top.hash = (uint64_t)wd;
		if (htab_add(&w->tops, &n->top)) {
			n->top.hash = 0;
			return -ENOMEM;
		}
		return 0;
	}
	d = calloc(1, sizeof(*d) + strlen(rel) + 1);
	if (!d)
		return -ENOMEM;
	strcpy(d->rel, rel);
	d->n = n;
	d->h.hash = (uint64_t)wd;
	if (htab_add(&w->wds, &d->h)) {
		free(d);
		return -ENOMEM;
	}
	d->sib = n->dirs;
	n->dirs = d;
	return 0;
}

static int watch_tree(struct storewatch *w, int dfd, struct wnode *n, const char *rel, int depth);

struct below {
	struct storewatch *w;
	struct wnode *n;
	const char *rel;
	int depth;
};

/* A subdirectory of the one walked; d_type saves a stat per member. */
static int watch_below(int dirfd, const char *name, mode_t type, void *arg)
{
	struct below *b = arg;
	char sub[PATH_MAX];
	int fd, ret;

	if (type != S_IFDIR)
		return 0;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0; /* gone: nothing to watch */
	snprintf(sub, sizeof(sub), "%s%s%s", b->rel, *b->rel ? "/" : "", name);
	ret = watch_tree(b->w, fd, b->n, sub, b->depth + 1);
	close(fd);
	return ret;
}

/* Whether directory dfd has no subdirectory, as its link count says on
 * a filesystem that counts them (its name and its "." make two): one
 * fstat instead of reading it, for nearly every keyset. */
static bool leaf(const struct storewatch *w, int dfd)
{
	struct stat st;

	return w->counts_subdirs && !fstat(dfd, &st) && st.st_dev == w->dev && st.st_nlink == 2;
}

/* Watches dfd and every directory below it; a tree deeper than any
 * keyset may be is not followed further (it cannot be exported anyway).
 * dfd is the caller's, opened for this, and walked itself. */
static int watch_tree(struct storewatch *w, int dfd, struct wnode *n, const char *rel, int depth)
{
	int ret;

	ret = watch_one(w, dfd, n, rel);
	if (ret || depth > KEYSET_DEPTH_MAX || leaf(w, dfd))
		return ret;
	return dirwalk_types_fd(dfd, watch_below, &(struct below){ w, n, rel, depth });
}

/* Without events nothing keeps the cache right but rescans. */
static void start_polling(struct storewatch *w, const char *why)
{
	pthread_mutex_lock(&w->lock);
	if (!w->polling)
		log_msg(LOG_WARNING, "store watcher: %s; looking for changes by rescanning", why);
	w->polling = true;
	pthread_mutex_unlock(&w->lock);
}

/* Watches keyset n's directory rel (its top if ""), and what is below;
 * fd is that directory, the caller's. */
static void watch_open(struct storewatch *w, int fd, struct wnode *n, const char *rel)
{
	int ret;

	ret = watch_tree(w, fd, n, rel, 0);
	if (ret == -ENOSPC)
		start_polling(w, "no inotify watches left (fs.inotify.max_user_watches)");
	if (!*rel) {
		pthread_mutex_lock(&w->lock);
		n->watched = !ret;
		pthread_mutex_unlock(&w->lock);
	}
}

/* Keyset n's directory rel, to watch; -1 if gone (the store directory's
 * event tells), past any member's path, or if nothing watches. */
static int open_dir(struct storewatch *w, struct wnode *n, const char *rel)
{
	char path[PATH_MAX];

	if (w->ifd < 0 || snprintf(path, sizeof(path), "%s%s%s", n->name, *rel ? "/" : "", rel) >=
			      (int)sizeof(path))
		return -1;
	return openat(w->root, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

static void watch_keyset(struct storewatch *w, struct wnode *n, const char *rel)
{
	int fd = open_dir(w, n, rel);

	if (fd >= 0) {
		watch_open(w, fd, n, rel);
		close(fd);
	}
}

/* A keyset new to the list: watched, then walked through the directory
 * it was watched by, so the stamp is kept. A walk before the watch, as
 * the seal cache's first look at the store makes, is not: a change in
 * between sent no event. */
static void watch_first(struct storewatch *w, struct wnode *n)
{
	uint64_t stamp;
	int fd = open_dir(w, n, "");

	if (fd >= 0)
		watch_open(w, fd, n, "");
	sw_wnode_stamp(w, n->name, fd, &stamp);
	if (fd >= 0)
		close(fd);
}

/* Drops every watch of keyset n: its directory is gone, or another one
 * has its name now. Walked until watched again. */
static void unwatch_keyset(struct storewatch *w, struct wnode *n)
{
	if (n->top.hash) {
		inotify_rm_watch(w->ifd, (int)n->top.hash);
		top_drop(w, n);
	}
	while (n->dirs) {
		inotify_rm_watch(w->ifd, (int)n->dirs->h.hash);
		wdir_drop(w, n->dirs);
	}
	pthread_mutex_lock(&w->lock);
	n->watched = false;
	pthread_mutex_unlock(&w->lock);
}

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
	store_names_free(names, count);
	/* Gone ones: only this thread frees nodes, so no lock is needed
	 * to walk the table, only to change it. */
	pos = 0;
	for (h = htab_next(&w->nodes, &pos, NULL); h; h = next) {
		next = htab_next(&w->nodes, &pos, h);
		n = (struct wnode *)h;
		if (n->seen)
			continue;
		unwatch_keyset(w, n);
		pthread_mutex_lock(&w->lock);
		htab_del(&w->nodes, h);
		pthread_mutex_unlock(&w->lock);
		if (w->fn) /* after: a stamp asked from it finds no keyset */
			w->fn(w->arg, n->name);
		sw_wnode_free(n);
	}
	/* From the end of the list: a listing right after the mount goes
	 * from its start, and a keyset this thread reached first it answers
	 * from memory. Both from the start, the two would walk the same
	 * keysets at once, the listing's walk lost (it came before any
	 * watch); this way they meet in the middle. */
	for (k = nf; k-- > 0;)
		watch_first(w, fresh[k]);
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
	char **names = NULL, **grown;
	size_t n = 0, k, pos = 0;

	pthread_mutex_lock(&w->lock);
	for (h = htab_next(&w->nodes, &pos, NULL); h; h = htab_next(&w->nodes, &pos, h)) {
		struct wnode *node = (struct wnode *)h;

		if (!node->pending)
			continue;
		grown = realloc(names, (n + 1) * sizeof(*names));
		if (!grown || !(grown[n] = strdup(node->name))) {
			names = grown ? grown : names;
			break; /* stays pending: the next round tells it */
		}
		names = grown;
		n++;
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
	ret = w->list_valid ? 0 : -EAGAIN;
	names = NULL;
	count = 0;
	if (!ret && !(names = calloc(w->n ? w->n : 1, sizeof(*names))))
		ret = -ENOMEM;
	for (k = 0; !ret && k < w->n && (names[k] = strdup(w->names[k])); k++)
		count++;
	pthread_mutex_unlock(&w->lock);
	for (k = 0; k < count; k++) {
		pthread_mutex_lock(&w->lock);
		n = sw_wnode_find(w, names[k]);
		gen = n ? n->gen : 0;
		pthread_mutex_unlock(&w->lock);
		if (!n)
			continue;
		if (rewatch)
			watch_keyset(w, n, "");
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
	store_names_free(names, count);
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
			unwatch_keyset(w, n);
			if (ev->mask & (IN_CREATE | IN_MOVED_TO))
				watch_keyset(w, n, "");
		}
		return;
	}
	d = wdir_find(w, ev->wd);
	n = d ? d->n : top_find(w, ev->wd);
	if (!n)
		return;
	if (ev->mask & IN_IGNORED) {
		if (d) {
			wdir_drop(w, d);
			return;
		}
		/* the top itself is gone: walked until its name is made anew */
		top_drop(w, n);
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
		watch_keyset(w, n, rel);
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

static bool magic_in(long type, const long *magic, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (type == magic[i])
			return true;
	return false;
}

/* Filesystems whose changes made elsewhere send no inotify events. */
static bool remote(long type)
{
	static const long magic[] = {
		0x6969,		/* NFS */
		0xFF534D42,	/* CIFS */
		0xFE534D42,	/* SMB2 */
		0x517B,		/* SMB */
		0x65735546,	/* FUSE */
		0x00C36400,	/* Ceph */
		0x01021997,	/* 9p */
		0x47504653,	/* GPFS */
		0x0BD00BD0,	/* Lustre */
	};

	return magic_in(type, magic, sizeof(magic) / sizeof(magic[0]));
}

/* Filesystems where a directory's link count is two plus its
 * subdirectories (leaf()); others, such as btrfs (always one), walk. */
static bool counts_subdirs(long type)
{
	static const long magic[] = {
		0xEF53,		/* ext2, ext3, ext4 */
		0x58465342,	/* XFS */
		0x01021994,	/* tmpfs */
	};

	return magic_in(type, magic, sizeof(magic) / sizeof(magic[0]));
}

static void watch_root(struct storewatch *w)
{
	struct statfs sf;
	struct stat st;
	char path[64];
	long type;

	type = fstatfs(w->root, &sf) ? 0 : (long)(uint32_t)sf.f_type;
	w->counts_subdirs = counts_subdirs(type) && !fstat(w->root, &st);
	w->dev = w->counts_subdirs ? st.st_dev : 0;
	if (remote(type))
		start_polling(w, "the store is on a network filesystem");
	w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ifd < 0) {
		start_polling(w, "inotify is not available");
		return;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", w->root);
	w->root_wd = inotify_add_watch(w->ifd, path, ROOT_MASK);
	if (w->root_wd < 0) {
		start_polling(w, "the store directory cannot be watched");
		close(w->ifd);
		w->ifd = -1;
		return;
	}
	pthread_mutex_lock(&w->lock);
	w->qfd = w->ifd;
	pthread_mutex_unlock(&w->lock);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void unwatch_all(struct storewatch *w)
{
	struct hnode *h, *next;
	size_t pos = 0;

	for (h = htab_next(&w->wds, &pos, NULL); h; h = next) {
		next = htab_next(&w->wds, &pos, h);
		free(h);
	}
	htab_free(&w->wds);
	htab_free(&w->tops);
	pthread_mutex_lock(&w->lock);
	w->qfd = -1; /* before the close: no one asks a closed descriptor */
	pthread_mutex_unlock(&w->lock);
	if (w->ifd >= 0)
		close(w->ifd);
	w->ifd = -1;
}

void *storewatch_main(void *arg)
{
	struct storewatch *w = arg;
	int64_t next_scan, took;
	struct pollfd p[2];
	bool list, overflow;
	int timeout;

	watch_root(w);
	took = now_ms();
	relist(w);
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
	unwatch_all(w);
	return NULL;
}
