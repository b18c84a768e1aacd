/* The store watcher's inotify watches: on the store directory, and on
 * every directory of every keyset, each found by its watch descriptor
 * (thread only; see storewatch.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "keyfs/dirwalk.h"
#include "keyfs/log.h"

#include "storewatch_priv.h"

#define ROOT_MASK (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR)
/* Directories are opened O_NOFOLLOW and watched through /proc/self/fd,
 * a link to follow: no IN_DONT_FOLLOW. */
#define KEYSET_MASK (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | \
		     IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_ONLYDIR)

/* The hash is the watch descriptor itself: the same hash, the same watch. */
static bool same_wd(const struct hnode *h, const void *wd)
{
	(void)h;
	(void)wd;
	return true;
}

struct wdir *sw_wdir_find(struct storewatch *w, int wd)
{
	return (struct wdir *)htab_find(&w->wds, (uint64_t)wd, same_wd, NULL);
}

/* The keyset whose top directory is watched as wd; NULL if none. */
struct wnode *sw_top_find(struct storewatch *w, int wd)
{
	struct hnode *h = htab_find(&w->tops, (uint64_t)wd, same_wd, NULL);

	return h ? (struct wnode *)((char *)h - offsetof(struct wnode, top)) : NULL;
}

void sw_top_drop(struct storewatch *w, struct wnode *n)
{
	htab_del(&w->tops, &n->top);
	n->top.hash = 0;
}

void sw_wdir_drop(struct storewatch *w, struct wdir *d)
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

/* Keeps watch wd (-errno: none) of keyset n's directory rel (its top
 * if ""); -errno. */
static int keep_watch(struct storewatch *w, int wd, struct wnode *n, const char *rel)
{
	struct wdir *d;

	if (wd < 0)
		return wd;
	if (sw_wdir_find(w, wd) || sw_top_find(w, wd))
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

/* Watches the directory dfd (rel below keyset n's top); -errno. */
static int watch_one(struct storewatch *w, int dfd, struct wnode *n, const char *rel)
{
	char path[64];
	int wd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", dfd);
	wd = inotify_add_watch(w->ifd, path, KEYSET_MASK);
	return keep_watch(w, wd < 0 ? -errno : wd, n, rel);
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

/* Whether directory name below dfd (dfd itself if "") has no
 * subdirectory, as its link count says on a filesystem that counts them
 * (its name and its "." make two): one stat instead of reading it, for
 * nearly every keyset. */
static bool leaf(const struct storewatch *w, int dfd, const char *name)
{
	struct stat st;

	return w->counts_subdirs &&
	       !fstatat(dfd, name, &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) &&
	       st.st_dev == w->dev && st.st_nlink == 2;
}

/* Watches dfd and every directory below it; a tree deeper than any
 * keyset may be is not followed further (it cannot be exported anyway).
 * dfd is the caller's, opened for this, and walked itself. */
static int watch_tree(struct storewatch *w, int dfd, struct wnode *n, const char *rel, int depth)
{
	int ret;

	ret = watch_one(w, dfd, n, rel);
	if (ret || depth > KEYSET_DEPTH_MAX || leaf(w, dfd, ""))
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

/* What watching keyset n's directory rel (its top if "") came to. */
static void watched(struct storewatch *w, struct wnode *n, const char *rel, int ret)
{
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

/* Keyset n's top, watched by its name, not opened: a third of the
 * calls, for each of a hundred thousand keysets at the start. The name
 * is one component (keyset_name_valid()) and not followed if a link,
 * as the open would not. -EAGAIN: it has subdirectories to watch too,
 * through an open directory. */
static int watch_top(struct storewatch *w, struct wnode *n)
{
	char path[PATH_MAX];
	int wd;

	if (w->here)
		wd = inotify_add_watch(w->ifd, n->name, KEYSET_MASK | IN_DONT_FOLLOW);
	else if (snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", w->root, n->name) <
		 (int)sizeof(path))
		wd = inotify_add_watch(w->ifd, path, KEYSET_MASK | IN_DONT_FOLLOW);
	else
		return -EAGAIN;
	if (wd < 0)
		return errno == ENOSPC ? -ENOSPC : -EAGAIN;
	/* the directory watched, or one put in its place since: the store
	 * directory's event of that renews the watch */
	if (!leaf(w, w->root, n->name))
		return -EAGAIN;
	return keep_watch(w, wd, n, "");
}

void sw_watch_keyset(struct storewatch *w, struct wnode *n, const char *rel)
{
	int fd, ret = -EAGAIN;

	if (w->ifd >= 0 && !*rel)
		ret = watch_top(w, n);
	if (ret == -EAGAIN) {
		fd = open_dir(w, n, rel);
		if (fd < 0)
			return;
		ret = watch_tree(w, fd, n, rel, 0);
		close(fd);
	}
	watched(w, n, rel, ret);
}

/* Drops every watch of keyset n: its directory is gone, or another one
 * has its name now. Walked until watched again. */
void sw_unwatch_keyset(struct storewatch *w, struct wnode *n)
{
	if (n->top.hash) {
		inotify_rm_watch(w->ifd, (int)n->top.hash);
		sw_top_drop(w, n);
	}
	while (n->dirs) {
		inotify_rm_watch(w->ifd, (int)n->dirs->h.hash);
		sw_wdir_drop(w, n->dirs);
	}
	pthread_mutex_lock(&w->lock);
	n->watched = false;
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

void sw_watch_root(struct storewatch *w)
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
	/* This thread's own working directory, the store: watch_top()
	 * names a keyset without a trip through /proc. */
	w->here = !unshare(CLONE_FS) && !fchdir(w->root);
}

void sw_unwatch_all(struct storewatch *w)
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
