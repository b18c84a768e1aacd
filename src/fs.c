/* FUSE operations over the keyfs tree:
 *
 *   /            .control  export/  import/  verify/
 *   /export/     README.txt  <keyset>.pem
 *
 * Paths are mapped to core calls here and nothing else happens here;
 * lookup and getattr never wait for sealing or a password. */
#include <errno.h>
#include <fcntl.h>
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
};

#define PEM_SUFFIX ".pem"

/* Open-file state for the read-only text files (status, README.txt). */
struct text {
	char *buf;
	size_t len;
};

static struct keyfs *kfs(void)
{
	return fuse_get_context()->private_data;
}

/* Classifies a path; for N_KEYSET, name receives the keyset name. */
static enum node classify(const char *path, char name[static KEYSET_NAME_MAX + 1])
{
	static const struct { const char *path; enum node n; } fixed[] = {
		{ "/", N_ROOT }, { "/.control", N_CONTROL }, { "/export", N_EXPORT },
		{ "/import", N_IMPORT }, { "/verify", N_VERIFY }, { "/export/README.txt", N_README },
	};
	const char *base;
	size_t i, len;

	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (!strcmp(path, fixed[i].path))
			return fixed[i].n;
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
			fill_file(k, st, 6, 0444, ((struct text *)fi->fh)->len, 0);
			return 0;
		}
		ret = ctl_readme(&k->ctl, &t.buf, &t.len);
		if (ret)
			return ret;
		fill_file(k, st, 6, 0444, t.len, 0);
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
	default:
		return -ENOENT;
	}
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
			snprintf(file, sizeof(file), "%s" PEM_SUFFIX, names[i]);
			fill(buf, file, NULL, 0, 0);
		}
		store_names_free(names, n);
		return 0;
	case N_IMPORT:
	case N_VERIFY:
		return 0;
	default:
		return -ENOTDIR;
	}
}

static int open_text(struct fuse_file_info *fi, int (*make)(struct ctl *, char **, size_t *))
{
	struct text *t;
	int ret;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	ret = make(&kfs()->ctl, &t->buf, &t->len);
	if (ret) {
		free(t);
		return ret;
	}
	fi->fh = (uint64_t)(uintptr_t)t;
	return 0;
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
		ret = sealcache_open(k->sc, name, &s);
		if (ret)
			return ret;
		fi->fh = (uint64_t)(uintptr_t)s;
		return 0;
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
		return read_buf(s->bytes, s->len, buf, size, off);
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

	(void)off;
	(void)fi;
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

	(void)size;
	(void)fi;
	/* "echo cmd > .control" truncates first; there is nothing to cut. */
	return classify(path, name) == N_CONTROL ? 0 : -EACCES;
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
	default:
		break;
	}
	return 0;
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	(void)path;
	(void)mode;
	(void)fi;
	return -EROFS;
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
};
