/* The path operations of fs.c served through libfuse's low-level API.
 *
 * The kernel names files by node id. libfuse's high-level layer keeps a
 * node of about 150 bytes, a copy of the name and two hash entries for
 * every file the kernel holds, and a listing of export/ makes the kernel
 * hold every export: 17 MB at a hundred thousand keysets. Here a node is
 * its name and a lookup count, 64 bytes. The tree is two levels deep:
 * the root's children are fixed, and only files in export/, import/ and
 * verify/ get nodes, which the kernel's FORGET frees. A node's id is its
 * address. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>

#include "keyfs/htab.h"

#include "fs_priv.h"

/* The kernel may keep what it is told this long: every change is told
 * to it (fs_changed()), so this only bounds a change nobody told. */
#define CACHE_SECONDS 60.0
/* An entry listed without attributes: the number libfuse gives it. */
#define UNKNOWN_INO 0xffffffffU

struct fnode {
	struct hnode h;		/* in nodes, by parent and name */
	struct fnode *parent;	/* NULL: unlinked, or a fixed node */
	uint64_t nlookup;	/* the kernel's references */
	char *name;		/* inl, or its own after a rename */
	char inl[];
};

/* The root and its children never go: the kernel's lookups of them are
 * not counted. */
static struct fnode fixed[] = {
	{ .name = (char *)"" },	  { .name = (char *)".control" }, { .name = (char *)".keysets" },
	{ .name = (char *)".metrics" }, { .name = (char *)"export" }, { .name = (char *)"import" },
	{ .name = (char *)"verify" },
};
#define NFIXED (sizeof(fixed) / sizeof(fixed[0]))

static struct keyfs *kfs;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct htab nodes;	/* protected by lock */
/* The request the calling thread serves: its caller. */
static __thread const struct fuse_ctx *ctx;

struct keyfs *fs_kfs(void)
{
	return kfs;
}

const struct fuse_ctx *fs_ctx(void)
{
	return ctx;
}

static bool is_fixed(const struct fnode *n)
{
	return n >= fixed && n < fixed + NFIXED;
}

static struct fnode *node_of(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? &fixed[0] : (struct fnode *)(uintptr_t)ino;
}

static fuse_ino_t ino_of(struct fnode *n)
{
	return n == &fixed[0] ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)n;
}

static uint64_t key_hash(const struct fnode *parent, const char *name)
{
	return htab_hash(name) ^ ((uintptr_t)parent * 0x9e3779b97f4a7c15ULL);
}

struct key {
	const struct fnode *parent;
	const char *name;
};

static bool same_key(const struct hnode *h, const void *arg)
{
	const struct fnode *n = (const struct fnode *)h;
	const struct key *k = arg;

	return n->parent == k->parent && !strcmp(n->name, k->name);
}

/* Caller holds lock. */
static struct fnode *child(struct fnode *parent, const char *name)
{
	size_t i;

	if (parent == &fixed[0]) {
		for (i = 1; i < NFIXED; i++)
			if (!strcmp(fixed[i].name, name))
				return &fixed[i];
		return NULL;
	}
	return (struct fnode *)htab_find(&nodes, key_hash(parent, name), same_key,
					 &(struct key){ parent, name });
}

/* The node of parent/name with one more lookup, made if new; NULL if out
 * of memory. */
static struct fnode *node_ref(struct fnode *parent, const char *name)
{
	struct fnode *n;

	_Static_assert(offsetof(struct fnode, h) == 0, "htab_add_named() returns the hnode");
	pthread_mutex_lock(&lock);
	n = child(parent, name);
	if (!n) {
		n = htab_add_named(&nodes, sizeof(*n), offsetof(struct fnode, inl), name,
				   key_hash(parent, name));
		if (n) {
			n->parent = parent;
			n->name = n->inl;
		}
	}
	if (n && !is_fixed(n))
		n->nlookup++;
	pthread_mutex_unlock(&lock);
	return n;
}

static void node_free(struct fnode *n)
{
	if (n->name != n->inl)
		free(n->name);
	free(n);
}

/* Takes it out of the tree: an unlinked node has no path. Caller holds
 * lock. */
static void detach(struct fnode *n)
{
	if (n && !is_fixed(n) && n->parent) {
		htab_del(&nodes, &n->h);
		n->parent = NULL;
	}
}

static void node_unref(fuse_ino_t ino, uint64_t count)
{
	struct fnode *n = node_of(ino);

	if (is_fixed(n))
		return;
	pthread_mutex_lock(&lock);
	n->nlookup -= count < n->nlookup ? count : n->nlookup;
	if (!n->nlookup) {
		detach(n);
		node_free(n);
	}
	pthread_mutex_unlock(&lock);
}

/* "/dir/name" of node n (and name below it, if not NULL) into path:
 * -ENOENT once unlinked, -ENAMETOOLONG past PATH_MAX. */
static int path_of(fuse_ino_t ino, const char *name, char path[static PATH_MAX])
{
	struct fnode *n = node_of(ino);
	int len;

	pthread_mutex_lock(&lock);
	if (n == &fixed[0])
		len = snprintf(path, PATH_MAX, "/%s", name ? name : "");
	else if (is_fixed(n))
		len = snprintf(path, PATH_MAX, "/%s%s%s", n->name, name ? "/" : "", name ? name : "");
	else if (n->parent)
		len = snprintf(path, PATH_MAX, "/%s/%s%s%s", n->parent->name, n->name,
			       name ? "/" : "", name ? name : "");
	else
		len = -ENOENT;
	pthread_mutex_unlock(&lock);
	if (len >= PATH_MAX)
		return -ENAMETOOLONG;
	return len < 0 ? len : 0;
}

/* The path of the request's node, the caller noted: 0 or -errno. */
static int begin(fuse_req_t req, fuse_ino_t ino, const char *name, char path[static PATH_MAX])
{
	ctx = fuse_req_ctx(req);
	return path_of(ino, name, path);
}

/* Tells the kernel of parent/name at path, created and opened if fi. */
static void reply_entry(fuse_req_t req, fuse_ino_t parent, const char *name, const char *path,
			const struct stat *st, struct fuse_file_info *fi)
{
	struct fuse_entry_param e = { .attr = *st, .attr_timeout = CACHE_SECONDS,
				      .entry_timeout = CACHE_SECONDS };
	struct fnode *n = node_ref(node_of(parent), name);
	int ret;

	if (!n) {
		if (fi)
			fs_ops.release(path, fi);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	e.ino = ino_of(n);
	ret = fi ? fuse_reply_create(req, &e, fi) : fuse_reply_entry(req, &e);
	/* the kernel did not take it: the caller is gone */
	if (ret) {
		if (fi)
			fs_ops.release(path, fi);
		node_unref(e.ino, 1);
	}
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	char path[PATH_MAX];
	struct stat st;
	int ret;

	ret = begin(req, parent, name, path);
	if (!ret)
		ret = fs_ops.getattr(path, &st, NULL);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		reply_entry(req, parent, name, path, &st, NULL);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	node_unref(ino, nlookup);
	fuse_reply_none(req);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	size_t i;

	for (i = 0; i < count; i++)
		node_unref(f[i].ino, f[i].nlookup);
	fuse_reply_none(req);
}

static void reply_attr(fuse_req_t req, const char *path, struct fuse_file_info *fi, int ret)
{
	struct stat st;

	if (!ret)
		ret = fs_ops.getattr(path, &st, fi);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, CACHE_SECONDS);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	char path[PATH_MAX];

	reply_attr(req, path, fi, begin(req, ino, NULL, path));
}

static int set_times(const char *path, const struct stat *a, int to_set,
		     struct fuse_file_info *fi)
{
	struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };

	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		tv[0].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		tv[0] = a->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		tv[1].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		tv[1] = a->st_mtim;
	return fs_ops.utimens(path, tv, fi);
}

/* In the order libfuse's high-level layer keeps: mode, owner, size,
 * times, each only if the one before succeeded. */
static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *a, int to_set,
		       struct fuse_file_info *fi)
{
	char path[PATH_MAX];
	int ret;

	ret = begin(req, ino, NULL, path);
	if (!ret && (to_set & FUSE_SET_ATTR_MODE))
		ret = fs_ops.chmod(path, a->st_mode, fi);
	if (!ret && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
		ret = fs_ops.chown(path, to_set & FUSE_SET_ATTR_UID ? a->st_uid : (uid_t)-1,
				   to_set & FUSE_SET_ATTR_GID ? a->st_gid : (gid_t)-1, fi);
	if (!ret && (to_set & FUSE_SET_ATTR_SIZE))
		ret = fs_ops.truncate(path, a->st_size, fi);
	if (!ret && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)))
		ret = set_times(path, a, to_set, fi);
	reply_attr(req, path, fi, ret);
}

/* An open directory: fs.c's handle, and for a directory fs.c lists
 * whole (offset 0 for every entry), that listing, answered by offset. */
struct dirh {
	uint64_t fh;
	char **names;
	size_t n, cap;
	char path[];
};

static void dirh_clear(struct dirh *d)
{
	store_names_free(d->names, d->n);
	d->names = NULL;
	d->n = d->cap = 0;
}

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	char path[PATH_MAX];
	struct dirh *d;
	int ret;

	ret = begin(req, ino, NULL, path);
	if (ret)
		goto out;
	d = calloc(1, sizeof(*d) + strlen(path) + 1);
	if (!d) {
		ret = -ENOMEM;
		goto out;
	}
	strcpy(d->path, path);
	ret = fs_ops.opendir(path, fi);
	if (ret) {
		free(d);
		goto out;
	}
	d->fh = fi->fh;
	fi->fh = (uint64_t)(uintptr_t)d;
	if (fuse_reply_open(req, fi)) {
		fi->fh = d->fh;
		fs_ops.releasedir(path, fi);
		free(d);
	}
	return;
out:
	fuse_reply_err(req, -ret);
}

/* One READDIR(PLUS) answer being filled. */
struct dirbuf {
	fuse_req_t req;
	fuse_ino_t ino;
	struct dirh *d;
	char *buf;
	size_t size, pos;
	bool plus;
	int err;
};

static int add(struct dirbuf *b, const char *name, const struct stat *st, off_t off)
{
	struct fuse_entry_param e = { .attr_timeout = CACHE_SECONDS,
				      .entry_timeout = CACHE_SECONDS };
	struct fnode *n = NULL;
	size_t len;

	if (st)
		e.attr = *st;
	else
		e.attr.st_ino = UNKNOWN_INO; /* readdir() skips inode 0 */
	if (!b->plus) {
		len = fuse_add_direntry(b->req, b->buf + b->pos, b->size - b->pos, name, &e.attr,
					off);
	} else {
		/* With attributes the kernel holds the file: a lookup. */
		if (st) {
			n = node_ref(node_of(b->ino), name);
			if (!n) {
				b->err = -ENOMEM;
				return 1;
			}
			e.ino = ino_of(n);
		}
		len = fuse_add_direntry_plus(b->req, b->buf + b->pos, b->size - b->pos, name, &e,
					     off);
	}
	if (len > b->size - b->pos) {
		if (n)
			node_unref(e.ino, 1);
		return 1;
	}
	b->pos += len;
	return 0;
}

static int fill(void *buf, const char *name, const struct stat *st, off_t off,
		enum fuse_fill_dir_flags flags)
{
	struct dirbuf *b = buf;
	struct dirh *d = b->d;
	char **grown;

	if (off)
		return add(b, name, flags & FUSE_FILL_DIR_PLUS ? st : NULL, off);
	/* no offsets: the whole listing, answered from below */
	if (d->n == d->cap) {
		grown = realloc(d->names, (d->cap ? 2 * d->cap : 16) * sizeof(*grown));
		if (!grown)
			goto nomem;
		d->names = grown;
		d->cap = d->cap ? 2 * d->cap : 16;
	}
	d->names[d->n] = strdup(name);
	if (!d->names[d->n])
		goto nomem;
	d->n++;
	return 0;
nomem:
	b->err = -ENOMEM;
	return 1;
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi, bool plus)
{
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	struct fuse_file_info own = *fi;
	struct dirbuf b = { .req = req, .ino = ino, .d = d, .size = size, .plus = plus };
	size_t i;
	int ret;

	ctx = fuse_req_ctx(req);
	b.buf = malloc(size);
	if (!b.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	own.fh = d->fh;
	/* fs.c answers export/ by offset itself; the rest is listed once,
	 * at the start (offset 0 again: a rewinddir). */
	if (d->fh || !off || !d->names) {
		if (!d->fh)
			dirh_clear(d);
		ret = fs_ops.readdir(d->path, &b, fill, off, &own,
				     plus ? FUSE_READDIR_PLUS : (enum fuse_readdir_flags)0);
		if (!ret)
			ret = b.err;
		if (ret && !b.pos)
			goto fail;
	}
	for (i = off > 0 ? (size_t)off : 0; !d->fh && i < d->n; i++)
		if (add(&b, d->names[i], NULL, (off_t)i + 1))
			break;
	fuse_reply_buf(req, b.buf, b.pos);
	free(b.buf);
	return;
fail:
	fuse_reply_err(req, -ret);
	free(b.buf);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	readdir_common(req, ino, size, off, fi, false);
}

static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	readdir_common(req, ino, size, off, fi, true);
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	struct fuse_file_info own = *fi;

	(void)ino;
	ctx = fuse_req_ctx(req);
	own.fh = d->fh;
	fs_ops.releasedir(d->path, &own);
	dirh_clear(d);
	free(d);
	fuse_reply_err(req, 0);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	char path[PATH_MAX];
	int ret;

	ret = begin(req, ino, NULL, path);
	if (!ret)
		ret = fs_ops.open(path, fi);
	if (ret)
		fuse_reply_err(req, -ret);
	else if (fuse_reply_open(req, fi))
		fs_ops.release(path, fi);
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	char path[PATH_MAX];
	struct stat st;
	int ret;

	ret = begin(req, parent, name, path);
	if (!ret)
		ret = fs_ops.create(path, mode, fi);
	if (ret)
		goto out;
	ret = fs_ops.getattr(path, &st, fi);
	if (ret) {
		fs_ops.release(path, fi);
		goto out;
	}
	reply_entry(req, parent, name, path, &st, fi);
	return;
out:
	fuse_reply_err(req, -ret);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	char path[PATH_MAX], *buf;
	int ret;

	ret = begin(req, ino, NULL, path);
	if (ret)
		goto out;
	buf = malloc(size);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	ret = fs_ops.read(path, buf, size, off, fi);
	if (ret >= 0)
		fuse_reply_buf(req, buf, (size_t)ret);
	free(buf);
	if (ret >= 0)
		return;
out:
	fuse_reply_err(req, -ret);
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	char path[PATH_MAX];
	int ret;

	ret = begin(req, ino, NULL, path);
	if (!ret)
		ret = fs_ops.write(path, buf, size, off, fi);
	else
		sodium_memzero((void *)buf, size); /* maybe a command, a password */
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_write(req, (size_t)ret);
}

static void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	char path[PATH_MAX];
	int ret;

	ret = begin(req, ino, NULL, path);
	if (!ret)
		ret = fs_ops.flush(path, fi);
	fuse_reply_err(req, -ret);
}

/* An unlinked node has no path; what it had open is still released. */
static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	char path[PATH_MAX];

	if (begin(req, ino, NULL, path))
		path[0] = '\0';
	fs_ops.release(path, fi);
	fuse_reply_err(req, 0);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	char path[PATH_MAX];
	int ret;

	ret = begin(req, parent, name, path);
	if (!ret)
		ret = fs_ops.unlink(path);
	if (!ret) {
		pthread_mutex_lock(&lock);
		detach(child(node_of(parent), name));
		pthread_mutex_unlock(&lock);
	}
	fuse_reply_err(req, -ret);
}

/* After a rename the node the kernel holds names the new path; one it
 * held for the target is unlinked. */
static int move(struct fnode *n, struct fnode *to, const char *name)
{
	char *copy = NULL;

	if (strcmp(n->name, name)) {
		copy = strdup(name);
		if (!copy)
			return -ENOMEM;
	}
	detach(child(to, name));
	htab_del(&nodes, &n->h);
	if (copy) {
		if (n->name != n->inl)
			free(n->name);
		n->name = copy;
	}
	n->parent = to;
	n->h.hash = key_hash(to, n->name);
	return htab_add(&nodes, &n->h);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	char from[PATH_MAX], to[PATH_MAX];
	struct fnode *n;
	int ret;

	ret = begin(req, parent, name, from);
	if (!ret)
		ret = path_of(newparent, newname, to);
	if (!ret)
		ret = fs_ops.rename(from, to, flags);
	if (!ret) {
		pthread_mutex_lock(&lock);
		n = child(node_of(parent), name);
		/* out of memory: the kernel looks it up again */
		if (n && !is_fixed(n) && move(n, node_of(newparent), newname))
			detach(n);
		pthread_mutex_unlock(&lock);
	}
	fuse_reply_err(req, -ret);
}

static void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	char path[PATH_MAX];
	int ret;

	ret = begin(req, ino, NULL, path);
	if (!ret)
		ret = fs_ops.setxattr(path, name, value, size, flags);
	fuse_reply_err(req, -ret);
}

static void ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	char path[PATH_MAX];
	int ret;

	ret = begin(req, ino, NULL, path);
	if (!ret)
		ret = fs_ops.fallocate(path, mode, off, len, fi);
	fuse_reply_err(req, -ret);
}

static void ll_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		    struct fuse_pollhandle *ph)
{
	char path[PATH_MAX];
	unsigned revents = 0;
	int ret;

	ret = begin(req, ino, NULL, path);
	if (!ret)
		ret = fs_ops.poll(path, fi, ph, &revents);
	else if (ph)
		fuse_pollhandle_destroy(ph);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_poll(req, revents);
}

/* At the session's end: what the kernel still held. */
static void ll_destroy(void *userdata)
{
	struct hnode *h, *next;
	size_t pos = 0;

	(void)userdata;
	pthread_mutex_lock(&lock);
	for (h = htab_next(&nodes, &pos, NULL); h; h = next) {
		next = htab_next(&nodes, &pos, h);
		node_free((struct fnode *)h);
	}
	htab_free(&nodes);
	pthread_mutex_unlock(&lock);
}

static const struct fuse_lowlevel_ops ll_ops = {
	.destroy = ll_destroy,
	.lookup = ll_lookup,
	.forget = ll_forget,
	.forget_multi = ll_forget_multi,
	.getattr = ll_getattr,
	.setattr = ll_setattr,
	.opendir = ll_opendir,
	.readdir = ll_readdir,
	.readdirplus = ll_readdirplus,
	.releasedir = ll_releasedir,
	.open = ll_open,
	.create = ll_create,
	.read = ll_read,
	.write = ll_write,
	.flush = ll_flush,
	.release = ll_release,
	.unlink = ll_unlink,
	.rename = ll_rename,
	.setxattr = ll_setxattr,
	.fallocate = ll_fallocate,
	.poll = ll_poll,
};

struct fuse_session *fs_session_new(struct fuse_args *args, struct keyfs *k)
{
	kfs = k;
	return fuse_session_new(args, &ll_ops, sizeof(ll_ops), k);
}

void fs_invalidate(struct keyfs *k, const char *dir, const char *name)
{
	struct fnode *n;
	fuse_ino_t ino = 0;
	size_t i;

	pthread_mutex_lock(&lock);
	for (i = 1; i < NFIXED; i++)
		if (!strcmp(fixed[i].name, dir))
			break;
	n = i < NFIXED ? child(&fixed[i], name) : NULL;
	if (n)
		ino = ino_of(n);
	pthread_mutex_unlock(&lock);
	/* A node forgotten meanwhile: the kernel no longer knows the id. */
	if (ino)
		fuse_lowlevel_notify_inval_inode(k->se, ino, 0, 0);
}
