/* FUSE operations over the keyfs tree:
 *
 *   /            .control  export/  import/  verify/
 *   /export/     README.txt  <keyset>.pem
 *
 * Paths are mapped to core calls here and nothing else happens here;
 * lookup and getattr never wait for sealing or a password. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/fs.h"
#include "keyfs/log.h"

enum node {
	N_NONE,
	N_ROOT,
	N_CONTROL,
	N_EXPORT,
	N_IMPORT,
	N_VERIFY,
	N_README,
	N_KEYSET,	/* export/<keyset>.pem */
	N_STAGED,	/* import/<file> or verify/<file> */
};

#define STAGE_IMPORT 0
#define STAGE_VERIFY 1

#define PEM_SUFFIX ".pem"

/* Open-file state for the read-only text files (status, README.txt). */
struct text {
	char *buf;
	size_t len;
	time_t mtime;
};

static struct keyfs *kfs(void)
{
	return fuse_get_context()->private_data;
}

/* For import/<file> and verify/<file>: which staging directory, and the
 * file name; -1 for any other path. */
static int staged(const char *path, const char **file)
{
	int dir;

	if (!strncmp(path, "/import/", 8))
		dir = STAGE_IMPORT;
	else if (!strncmp(path, "/verify/", 8))
		dir = STAGE_VERIFY;
	else
		return -1;
	*file = path + 8;
	return **file && !strchr(*file, '/') ? dir : -1;
}

/* Classifies a path; for N_KEYSET, name receives the keyset name. */
static enum node classify(const char *path, char name[static KEYSET_NAME_MAX + 1])
{
	const char *file;
	static const struct { const char *path; enum node n; } fixed[] = {
		{ "/", N_ROOT }, { "/.control", N_CONTROL }, { "/export", N_EXPORT },
		{ "/import", N_IMPORT }, { "/verify", N_VERIFY }, { "/export/README.txt", N_README },
	};
	const char *base;
	size_t i, len;

	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (!strcmp(path, fixed[i].path))
			return fixed[i].n;
	if (staged(path, &file) >= 0)
		return N_STAGED;
	if (strncmp(path, "/export/", 8))
		return N_NONE;
	base = path + 8;
	len = strlen(base);
	if (len <= strlen(PEM_SUFFIX) || strcmp(base + len - strlen(PEM_SUFFIX), PEM_SUFFIX))
		return N_NONE;
	len -= strlen(PEM_SUFFIX);
	if (len > KEYSET_NAME_MAX)
		return N_NONE;
	memcpy(name, base, len);
	name[len] = '\0';
	return keyset_name_valid(name) ? N_KEYSET : N_NONE;
}

/* The tree belongs to the mounting user; default_permissions enforces the
 * modes, and commands and imports check the caller again here. */
static bool caller_is_owner(struct keyfs *k)
{
	uid_t uid = fuse_get_context()->uid;

	return uid == k->uid || uid == 0;
}

static void invalidate_export(struct keyfs *k, const char *keyset)
{
	char path[KEYSET_NAME_MAX + 16];

	snprintf(path, sizeof(path), "/export/%s" PEM_SUFFIX, keyset);
	/* -ENOENT only says the kernel holds nothing of it yet */
	fuse_invalidate_path(k->fuse, path);
}

void fs_changed(void *arg, const char *keyset)
{
	struct keyfs *k = arg;
	char **names = NULL;
	size_t n = 0, i;

	/* A new key changes every export's time: the kernel must not answer
	 * a stat with the old one once the command that set it returned,
	 * or tar sees the file change as it reads it. */
	if (!keyset && k->st.ops->list(k->st.priv, &names, &n))
		n = 0;
	/* Sealing workers call this too: never after the unmount began. */
	pthread_mutex_lock(&k->fuse_lock);
	if (k->fuse) {
		fuse_invalidate_path(k->fuse, "/export/README.txt");
		if (keyset)
			invalidate_export(k, keyset);
		for (i = 0; i < n; i++)
			invalidate_export(k, names[i]);
	}
	pthread_mutex_unlock(&k->fuse_lock);
	store_names_free(names, n);
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	cfg->use_ino = 1;	/* stable inode numbers: backup tools key on them */
	cfg->entry_timeout = 1;
	cfg->attr_timeout = 1;
	cfg->negative_timeout = 0;
	return kfs();
}

static void fill_dir(struct keyfs *k, struct stat *st, ino_t ino, mode_t mode)
{
	st->st_ino = ino;
	st->st_mode = S_IFDIR | mode;
	st->st_nlink = 2;
	st->st_mtime = st->st_ctime = st->st_atime = k->started;
}

static void fill_file(struct keyfs *k, struct stat *st, ino_t ino, mode_t mode, size_t size,
		      time_t mtime)
{
	st->st_ino = ino;
	st->st_mode = S_IFREG | mode;
	st->st_nlink = 1;
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	st->st_mtime = st->st_ctime = st->st_atime = mtime ? mtime : k->started;
}

static int getattr_staged(struct keyfs *k, const char *path, struct stat *st)
{
	struct stage_attr a;
	const char *file;
	int dir, ret;

	dir = staged(path, &file);
	ret = stage_getattr(k->stage, dir, file, &a);
	if (ret)
		return ret;
	/* inode numbers below the keysets' range, per name */
	fill_file(k, st, (sealcache_ino(path) >> 2) | (1ULL << 62), a.mode, a.size, a.mtime);
	return 0;
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	char name[KEYSET_NAME_MAX + 1];
	struct keyfs *k = kfs();
	struct export_attr a;
	struct text t;
	int ret;

	memset(st, 0, sizeof(*st));
	st->st_uid = k->uid;
	st->st_gid = k->gid;
	st->st_blksize = 4096;
	switch (classify(path, name)) {
	case N_ROOT:
		fill_dir(k, st, 1, 0500);
		return 0;
	case N_CONTROL:
		fill_file(k, st, 2, 0600, 0, 0);
		return 0;
	case N_EXPORT:
		fill_dir(k, st, 3, 0500);
		return 0;
	case N_IMPORT:
		fill_dir(k, st, 4, 0700);
		return 0;
	case N_VERIFY:
		fill_dir(k, st, 5, 0700);
		return 0;
	case N_README:
		/* An open README keeps the text it opened, size included. */
		if (fi && fi->fh) {
			t = *(struct text *)fi->fh;
			fill_file(k, st, 6, 0444, t.len, t.mtime);
			return 0;
		}
		ret = ctl_readme(&k->ctl, &t.buf, &t.len, &t.mtime);
		if (ret)
			return ret;
		fill_file(k, st, 6, 0444, t.len, t.mtime);
		free(t.buf);
		return 0;
	case N_KEYSET:
		if (fi && fi->fh) {
			struct seal *s = (struct seal *)fi->fh;

			fill_file(k, st, sealcache_ino(name), 0400, s->len, s->sealed_at);
			return 0;
		}
		ret = sealcache_attr(k->sc, name, &a);
		if (ret)
			return ret == -ENOENT ? ret : -EIO;
		fill_file(k, st, a.ino, 0400, a.size, a.mtime);
		return 0;
	case N_STAGED:
		return getattr_staged(k, path, st);
	default:
		return -ENOENT;
	}
}

struct filler {
	void *buf;
	fuse_fill_dir_t fill;
};

static void fill_name(void *arg, const char *name)
{
	struct filler *f = arg;

	f->fill(f->buf, name, NULL, 0, 0);
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	char name[KEYSET_NAME_MAX + 1], file[KEYSET_NAME_MAX + sizeof(PEM_SUFFIX)];
	struct keyfs *k = kfs();
	char **names;
	size_t n, i;
	int ret;

	(void)off;
	(void)fi;
	(void)flags;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	switch (classify(path, name)) {
	case N_ROOT:
		fill(buf, ".control", NULL, 0, 0);
		fill(buf, "export", NULL, 0, 0);
		fill(buf, "import", NULL, 0, 0);
		fill(buf, "verify", NULL, 0, 0);
		return 0;
	case N_EXPORT:
		fill(buf, "README.txt", NULL, 0, 0);
		ret = k->st.ops->list(k->st.priv, &names, &n);
		if (ret)
			return ret;
		for (i = 0; i < n; i++) {
			struct export_attr a;

			/* a keyset that cannot be exported is in status, not here */
			if (sealcache_attr(k->sc, names[i], &a) == -ENOENT)
				continue;
			snprintf(file, sizeof(file), "%s" PEM_SUFFIX, names[i]);
			fill(buf, file, NULL, 0, 0);
		}
		store_names_free(names, n);
		return 0;
	case N_IMPORT:
	case N_VERIFY:
		return stage_list(k->stage, classify(path, name) == N_VERIFY, fill_name,
				  &(struct filler){ buf, fill });
	default:
		return -ENOTDIR;
	}
}

static int open_text(struct fuse_file_info *fi,
		     int (*make)(struct ctl *, char **, size_t *, time_t *))
{
	struct text *t;
	int ret;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	ret = make(&kfs()->ctl, &t->buf, &t->len, &t->mtime);
	if (ret) {
		free(t);
		return ret;
	}
	fi->fh = (uint64_t)(uintptr_t)t;
	return 0;
}

static int open_staged(const char *path, struct fuse_file_info *fi, bool create, mode_t mode)
{
	struct keyfs *k = kfs();
	const char *file;
	int dir;

	if (!caller_is_owner(k))
		return -EACCES;
	dir = staged(path, &file);
	if (dir < 0)
		return -EACCES;
	/* Processing is per flush, never from the page cache's view. */
	fi->direct_io = 1;
	return stage_open(k->stage, dir, file, create, fi->flags & O_EXCL, fi->flags & O_TRUNC, mode);
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	char name[KEYSET_NAME_MAX + 1];
	struct keyfs *k = kfs();
	struct seal *s;
	int ret, acc = fi->flags & O_ACCMODE;

	switch (classify(path, name)) {
	case N_CONTROL:
		if (!caller_is_owner(k))
			return -EACCES;
		fi->direct_io = 1; /* keep passwords out of the page cache */
		if (acc == O_RDONLY)
			return open_text(fi, ctl_status);
		fi->fh = 0;
		return acc == O_WRONLY ? 0 : -EINVAL;
	case N_README:
		if (acc != O_RDONLY)
			return -EACCES;
		return open_text(fi, ctl_readme);
	case N_KEYSET:
		if (acc != O_RDONLY)
			return -EACCES;
		sources_ask_agent(k->src, name);
		ret = sealcache_open(k->sc, name, &s);
		if (ret)
			return ret;
		fi->fh = (uint64_t)(uintptr_t)s;
		fi->keep_cache = s->unchanged;
		return 0;
	case N_STAGED:
		return open_staged(path, fi, false, 0);
	case N_NONE:
		return -ENOENT;
	default:
		return -EISDIR;
	}
}

static int read_buf(const char *src, size_t len, char *buf, size_t size, off_t off)
{
	if (off < 0 || (size_t)off >= len)
		return 0;
	if (size > len - (size_t)off)
		size = len - (size_t)off;
	memcpy(buf, src + off, size);
	return (int)size;
}

static int fs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	char name[KEYSET_NAME_MAX + 1];
	struct seal *s;
	struct text *t;

	switch (classify(path, name)) {
	case N_CONTROL:
	case N_README:
		t = (struct text *)fi->fh;
		return t ? read_buf(t->buf, t->len, buf, size, off) : -EBADF;
	case N_KEYSET:
		s = (struct seal *)fi->fh;
		return (int)seal_read(s, buf, size, off);
	case N_STAGED: {
		const char *file;
		int dir = staged(path, &file);

		return stage_read(kfs()->stage, dir, file, buf, size, off);
	}
	default:
		return -EBADF;
	}
}

static int fs_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	char name[KEYSET_NAME_MAX + 1];
	struct keyfs *k = kfs();
	char *cmd;
	int ret;

	(void)fi;
	if (classify(path, name) == N_STAGED) {
		const char *file;
		int dir = staged(path, &file);

		return stage_write(k->stage, dir, file, buf, size, off);
	}
	if (classify(path, name) != N_CONTROL)
		return -EBADF;
	if (!caller_is_owner(k))
		return -EACCES;
	if (size >= CTL_COMMAND_MAX) {
		log_msg(LOG_WARNING, "control: command refused: longer than %d bytes", CTL_COMMAND_MAX - 1);
		ret = -EINVAL;
		goto wipe;
	}
	cmd = sodium_malloc(size + 1);
	if (!cmd) {
		ret = -ENOMEM;
		goto wipe;
	}
	memcpy(cmd, buf, size);
	ret = ctl_command(&k->ctl, cmd, size);
	sodium_free(cmd);
wipe:
	/* The request buffer is libfuse's and reused, but it held the
	 * command (maybe a password) until now: wipe it. */
	sodium_memzero((void *)buf, size);
	return ret ? ret : (int)size;
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	char name[KEYSET_NAME_MAX + 1];
	const char *file;
	int dir;

	(void)fi;
	dir = staged(path, &file);
	if (dir >= 0)
		return stage_truncate(kfs()->stage, dir, file, size);
	/* "echo cmd > .control" truncates first; there is nothing to cut. */
	return classify(path, name) == N_CONTROL ? 0 : -EACCES;
}

/* The outcome of an import reaches the writer here, as close(2)'s errno:
 * release runs later and its errors are dropped by the kernel. */
static int fs_flush(const char *path, struct fuse_file_info *fi)
{
	const char *file;
	int dir;

	(void)fi;
	dir = staged(path, &file);
	if (dir < 0)
		return 0;
	return stage_flush(kfs()->stage, dir, file);
}

/* chmod, chown, utimens on staged files succeed and keep only what
 * getattr shows: tar, rsync -a and cp -a fail if they do not. */
static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	const char *file;
	int dir;

	(void)fi;
	dir = staged(path, &file);
	return dir < 0 ? -EPERM : stage_setattr(kfs()->stage, dir, file, &mode, NULL);
}

static int fs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	struct stage_attr a;
	const char *file;
	int dir;

	(void)uid;
	(void)gid;
	(void)fi;
	dir = staged(path, &file);
	return dir < 0 ? -EPERM : stage_getattr(kfs()->stage, dir, file, &a);
}

static int fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	const char *file;
	time_t mtime;
	int dir;

	(void)fi;
	dir = staged(path, &file);
	if (dir < 0)
		return -EPERM;
	mtime = tv[1].tv_nsec == UTIME_NOW || tv[1].tv_nsec == UTIME_OMIT ? time(NULL) : tv[1].tv_sec;
	return stage_setattr(kfs()->stage, dir, file, NULL, &mtime);
}

static int fs_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
	const char *file;

	(void)mode;
	(void)off;
	(void)len;
	(void)fi;
	return staged(path, &file) < 0 ? -EOPNOTSUPP : 0;
}

static int fs_setxattr(const char *path, const char *name, const char *value, size_t size, int flags)
{
	(void)path;
	(void)name;
	(void)value;
	(void)size;
	(void)flags;
	return -ENOTSUP; /* cp -a treats this as "no ACLs here" */
}

static int fs_unlink(const char *path)
{
	const char *file;
	int dir;

	dir = staged(path, &file);
	return dir < 0 ? -EPERM : stage_unlink(kfs()->stage, dir, file);
}

static int fs_rename(const char *from, const char *to, unsigned int flags)
{
	const char *ffile, *tfile;
	int fdir, tdir;

	fdir = staged(from, &ffile);
	tdir = staged(to, &tfile);
	if (fdir < 0 || tdir < 0)
		return -EPERM;
	if (fdir != tdir)
		return -EXDEV;
	if (flags)
		return -EINVAL;
	return stage_rename(kfs()->stage, fdir, ffile, tfile);
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
	char name[KEYSET_NAME_MAX + 1];
	struct text *t;

	switch (classify(path, name)) {
	case N_KEYSET:
		seal_put((struct seal *)fi->fh);
		break;
	case N_CONTROL:
	case N_README:
		t = (struct text *)fi->fh;
		if (t) {
			free(t->buf);
			free(t);
		}
		break;
	case N_STAGED: {
		const char *file;
		int dir = staged(path, &file);

		stage_release(kfs()->stage, dir, file);
		break;
	}
	default:
		break;
	}
	return 0;
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	return open_staged(path, fi, true, mode);
}

/* Regular files are always ready. Without this, libfuse 3.14 leaks the
 * poll handle of every poll it answers ENOSYS; Go programs such as
 * restic poll every file they open. */
static int fs_poll(const char *path, struct fuse_file_info *fi, struct fuse_pollhandle *ph,
		   unsigned *reventsp)
{
	(void)path;
	(void)fi;
	if (ph)
		fuse_pollhandle_destroy(ph);
	*reventsp |= POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM;
	return 0;
}

const struct fuse_operations keyfs_ops = {
	.init = fs_init,
	.getattr = fs_getattr,
	.readdir = fs_readdir,
	.open = fs_open,
	.read = fs_read,
	.write = fs_write,
	.truncate = fs_truncate,
	.release = fs_release,
	.create = fs_create,
	.flush = fs_flush,
	.chmod = fs_chmod,
	.chown = fs_chown,
	.utimens = fs_utimens,
	.fallocate = fs_fallocate,
	.setxattr = fs_setxattr,
	.unlink = fs_unlink,
	.rename = fs_rename,
	.poll = fs_poll,
};
