/* The path operations of fs.c served through libfuse's low-level API.
 *
 * The kernel names files by node id. libfuse's high-level layer keeps a
 * node of about 150 bytes, a copy of the name and two hash entries for
 * every file the kernel holds, and a listing of export/ makes the kernel
 * hold every export: 17 MB at a hundred thousand keysets. The nodes here
 * are fs_node.c's, 64 bytes each. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>

#include "fs_priv.h"

/* The kernel may keep what it is told this long: every change is told
 * to it (fs_changed()), so this only bounds a change nobody told. */
#define CACHE_SECONDS 60.0
/* An entry listed without attributes: the number libfuse gives it. */
#define UNKNOWN_INO 0xffffffffU
/* The largest read the kernel asks for. Every file here is read with
 * direct_io, and before it asks, the kernel faults in and pins as much
 * of the reader's buffer as the request may fill. cat and cp take a new
 * 128 KiB buffer for each file, so a read of a 7 KB export paid for 32
 * fresh pages, more than the rest of its read. An export is mostly
 * under 16 KiB; a larger one takes a request per 16 KiB. */
#define MAX_READ 16384
#define STR_(x) #x
#define STR(x) STR_(x)

/* The path of the request's node, the caller noted: 0 or -errno. */
static int begin(fuse_req_t req, fuse_ino_t ino, const char *name, char path[static PATH_MAX])
{
	fs_set_caller(req);
	return fs_node_path(ino, name, path);
}

/* Tells the kernel of parent/name at path, created and opened if fi. */
static void reply_entry(fuse_req_t req, fuse_ino_t parent, const char *name, const char *path,
			const struct stat *st, struct fuse_file_info *fi)
{
	struct fuse_entry_param e = { .attr = *st, .attr_timeout = CACHE_SECONDS,
				      .entry_timeout = CACHE_SECONDS };
	int ret;

	e.ino = fs_node_ref(parent, name);
	if (!e.ino) {
		if (fi)
			fs_ops.release(path, fi);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ret = fi ? fuse_reply_create(req, &e, fi) : fuse_reply_entry(req, &e);
	/* the kernel did not take it: the caller is gone */
	if (ret) {
		if (fi)
			fs_ops.release(path, fi);
		fs_node_unref(e.ino, 1);
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
	fs_node_unref(ino, nlookup);
	fuse_reply_none(req);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	size_t i;

	for (i = 0; i < count; i++)
		fs_node_unref(f[i].ino, f[i].nlookup);
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
	size_t n;
	char path[];
};

static void dirh_clear(struct dirh *d)
{
	store_names_free(d->names, d->n);
	d->names = NULL;
	d->n = 0;
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
			e.ino = fs_node_ref(b->ino, name);
			if (!e.ino) {
				b->err = -ENOMEM;
				return 1;
			}
		}
		len = fuse_add_direntry_plus(b->req, b->buf + b->pos, b->size - b->pos, name, &e,
					     off);
	}
	if (len > b->size - b->pos) {
		if (e.ino)
			fs_node_unref(e.ino, 1);
		return 1;
	}
	b->pos += len;
	return 0;
}

static int fill(void *buf, const char *name, const struct stat *st, off_t off,
		enum fuse_fill_dir_flags flags)
{
	struct dirbuf *b = buf;

	if (off)
		return add(b, name, flags & FUSE_FILL_DIR_PLUS ? st : NULL, off);
	/* no offsets: the whole listing, answered from below */
	b->err = store_names_add(&b->d->names, &b->d->n, name);
	return b->err ? 1 : 0;
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi, bool plus)
{
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	struct fuse_file_info own = *fi;
	struct dirbuf b = { .req = req, .ino = ino, .d = d, .size = size, .plus = plus };
	size_t i;
	int ret;

	fs_set_caller(req);
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
	fs_set_caller(req);
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
	if (!ret)
		fs_node_unlink(parent, name);
	fuse_reply_err(req, -ret);
}

/* After a rename the node the kernel holds names the new path; one it
 * held for the target is unlinked. */
static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	char from[PATH_MAX], to[PATH_MAX];
	int ret;

	ret = begin(req, parent, name, from);
	if (!ret)
		ret = fs_node_path(newparent, newname, to);
	if (!ret)
		ret = fs_ops.rename(from, to, flags);
	if (!ret)
		fs_node_rename(parent, name, newparent, newname);
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
	(void)userdata;
	fs_node_free_all();
}

static void ll_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->max_read = MAX_READ; /* libfuse wants the mount option's value */
}

static const struct fuse_lowlevel_ops ll_ops = {
	.init = ll_init,
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
	fs_set_kfs(k);
	if (fuse_opt_add_arg(args, "-omax_read=" STR(MAX_READ)))
		return NULL;
	return fuse_session_new(args, &ll_ops, sizeof(ll_ops), k);
}
