/* FUSE operations over the keyfs tree:
 *
 *   /            .control  .keysets  .metrics  export/  import/  verify/
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

#include "keyfs/log.h"

#include "fs_priv.h"

/* Open-file state for the read-only text files (status, README.txt). */
struct text {
	char *buf;
	size_t len;
	time_t mtime;
};

static void invalidate_export(struct keyfs *k, const char *keyset)
{
	char file[KEYSET_NAME_MAX + sizeof(PEM_SUFFIX)];

	snprintf(file, sizeof(file), "%s" PEM_SUFFIX, keyset);
	fs_invalidate(k, "export", file);
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
	if (k->se) {
		fs_invalidate(k, "export", "README.txt");
		if (keyset)
			invalidate_export(k, keyset);
		for (i = 0; i < n; i++)
			invalidate_export(k, names[i]);
	}
	pthread_mutex_unlock(&k->fuse_lock);
	store_list_free(names);
}

/* The attributes of an export not open. */
static void export_stat(struct keyfs *k, struct stat *st, const struct export_attr *a)
{
	memset(st, 0, sizeof(*st));
	st->st_uid = k->uid;
	st->st_gid = k->gid;
	st->st_blksize = 4096;
	fs_fill_file(k, st, a->ino, 0400, a->size, a->mtime);
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	char name[KEYSET_NAME_MAX + 1];
	struct keyfs *k = fs_kfs();
	struct export_attr a;
	struct text t;
	int ret;

	memset(st, 0, sizeof(*st));
	st->st_uid = k->uid;
	st->st_gid = k->gid;
	st->st_blksize = 4096;
	switch (fs_classify(path, name)) {
	case N_ROOT:
		fs_fill_dir(k, st, 1, 0500);
		return 0;
	case N_CONTROL:
		fs_fill_file(k, st, 2, 0600, 0, 0);
		return 0;
	case N_METRICS:
		fs_fill_file(k, st, 7, 0444, 0, 0);
		return 0;
	case N_LIST:
		fs_fill_file(k, st, 8, 0400, 0, 0);
		return 0;
	case N_EXPORT:
		fs_fill_dir(k, st, 3, 0500);
		return 0;
	case N_IMPORT:
		fs_fill_dir(k, st, 4, 0700);
		return 0;
	case N_VERIFY:
		fs_fill_dir(k, st, 5, 0700);
		return 0;
	case N_README:
		/* An open README keeps the text it opened, size included. */
		if (fi && fi->fh) {
			t = *(struct text *)fi->fh;
			fs_fill_file(k, st, 6, 0444, t.len, t.mtime);
			return 0;
		}
		ret = report_readme(&k->ctl, &t.buf, &t.len, &t.mtime);
		if (ret)
			return ret;
		fs_fill_file(k, st, 6, 0444, t.len, t.mtime);
		free(t.buf);
		return 0;
	case N_KEYSET:
		if (fi && fi->fh) {
			struct seal *s = (struct seal *)fi->fh;

			fs_fill_file(k, st, sealcache_ino(name), 0400, s->len, s->sealed_at);
			return 0;
		}
		ret = sealcache_attr(k->sc, name, &a);
		if (ret)
			return ret == -ENOENT ? ret : -EIO;
		export_stat(k, st, &a);
		return 0;
	case N_STAGED:
		return fs_getattr_staged(k, path, st);
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

/* export/'s keysets, listed at opendir: readdir answers from the list
 * by offset, so a request resumes where the last ended. Listed whole
 * for every request instead (what fs_ll.c does for the small
 * directories), a hundred thousand keysets would cost time quadratic in
 * their number. */
struct listing {
	char **names;
	size_t n;
};

static int fs_opendir(const char *path, struct fuse_file_info *fi)
{
	char name[KEYSET_NAME_MAX + 1];
	struct keyfs *k = fs_kfs();
	struct listing *l;
	int ret;

	fi->fh = 0;
	if (fs_classify(path, name) != N_EXPORT)
		return 0;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	ret = k->st.ops->list(k->st.priv, &l->names, &l->n);
	if (ret) {
		free(l);
		return ret;
	}
	fi->fh = (uintptr_t)l;
	return 0;
}

static int fs_releasedir(const char *path, struct fuse_file_info *fi)
{
	struct listing *l = (struct listing *)(uintptr_t)fi->fh;

	(void)path;
	if (l) {
		store_list_free(l->names);
		free(l);
	}
	return 0;
}

/* export/ from offset off: ".", "..", README.txt, then every keyset that
 * can be exported; entry j is told with offset j + 1, where the next
 * request resumes. With READDIRPLUS the attributes go along, so `ls -l`
 * and rsync stat from the kernel's cache instead of one lookup per
 * keyset. */
static int list_exports(struct keyfs *k, const struct listing *l, off_t off, void *buf,
			fuse_fill_dir_t fill, enum fuse_readdir_flags flags)
{
	static const char *const fixed[] = { ".", "..", "README.txt" };
	char file[KEYSET_NAME_MAX + sizeof(PEM_SUFFIX)];
	bool plus = flags & FUSE_READDIR_PLUS;
	struct export_attr a;
	struct stat st;
	size_t i;

	for (; off >= 0 && off < 3; off++)
		if (fill(buf, fixed[off], NULL, off + 1, 0))
			return 0;
	store_batch(&k->st, true);
	for (i = (size_t)off - 3; off >= 3 && i < l->n; i++) {
		/* A keyset that cannot be exported is in status, not here.
		 * Names alone (`ls`, find) need no attributes: what is known
		 * of it says (sealcache_listed()). */
		if (plus ? sealcache_attr(k->sc, l->names[i], &a) :
			   !sealcache_listed(k->sc, l->names[i]))
			continue;
		snprintf(file, sizeof(file), "%s" PEM_SUFFIX, l->names[i]);
		if (plus)
			export_stat(k, &st, &a);
		if (fill(buf, file, plus ? &st : NULL, (off_t)i + 4, plus ? FUSE_FILL_DIR_PLUS : 0))
			break;
	}
	store_batch(&k->st, false);
	return 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	char name[KEYSET_NAME_MAX + 1];
	struct keyfs *k = fs_kfs();

	if (fi && fi->fh)
		return list_exports(k, (const struct listing *)(uintptr_t)fi->fh, off, buf, fill,
				    flags);
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	switch (fs_classify(path, name)) {
	case N_ROOT:
		fill(buf, ".control", NULL, 0, 0);
		fill(buf, ".keysets", NULL, 0, 0);
		fill(buf, ".metrics", NULL, 0, 0);
		fill(buf, "export", NULL, 0, 0);
		fill(buf, "import", NULL, 0, 0);
		fill(buf, "verify", NULL, 0, 0);
		return 0;
	case N_IMPORT:
	case N_VERIFY:
		return stage_list(k->stage, fs_classify(path, name) == N_VERIFY, fill_name,
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
	ret = make(&fs_kfs()->ctl, &t->buf, &t->len, &t->mtime);
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
	struct keyfs *k = fs_kfs();
	struct list_reader *lr;
	struct seal *s;
	int ret, acc = fi->flags & O_ACCMODE;
	enum node node = fs_classify(path, name);

	/* Only a staged file's close has an outcome (fs_flush()): the close
	 * of anything else, a backup's of an export above all, is one
	 * request fewer. */
	fi->noflush = node != N_STAGED;
	switch (node) {
	case N_CONTROL:
		if (!fs_caller_is_owner(k))
			return -EACCES;
		fi->direct_io = 1; /* keep passwords out of the page cache */
		if (acc == O_RDONLY) {
			/* what the agent answered to the opens before this one */
			sources_settle(k->src);
			return open_text(fi, report_status);
		}
		fi->fh = 0;
		return acc == O_WRONLY ? 0 : -EINVAL;
	case N_README:
		if (acc != O_RDONLY)
			return -EACCES;
		/* Nothing in the page cache for the seal cache's observer to
		 * wait on when it drops README.txt's attributes. */
		fi->direct_io = 1;
		return open_text(fi, report_readme);
	case N_METRICS:
		if (acc != O_RDONLY)
			return -EACCES;
		fi->direct_io = 1; /* its size is known only once made */
		return open_text(fi, report_metrics);
	case N_LIST:
		if (!fs_caller_is_owner(k))
			return -EACCES;
		if (acc != O_RDONLY)
			return -EACCES;
		fi->direct_io = 1;
		ret = report_list_open(&k->ctl, &lr);
		if (ret == 0)
			fi->fh = (uint64_t)(uintptr_t)lr;
		return ret;
	case N_KEYSET:
		if (acc != O_RDONLY)
			return -EACCES;
		/* The agent, if any, is asked off this thread: through the
		 * seal cache's password provider (sources_need()). */
		ret = sealcache_open(k->sc, name, &s);
		if (ret)
			return ret;
		fi->fh = (uint64_t)(uintptr_t)s;
		/* Reads reach keyfs as the reader makes them, not as page
		 * cache readahead does: only then does a read of the last
		 * byte mean the reader read it (a backup, not a `head`). */
		fi->direct_io = 1;
		return 0;
	case N_STAGED:
		return fs_open_staged(path, fi, false, 0);
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

	switch (fs_classify(path, name)) {
	case N_CONTROL:
	case N_README:
	case N_METRICS:
		t = (struct text *)fi->fh;
		return t ? read_buf(t->buf, t->len, buf, size, off) : -EBADF;
	case N_LIST:
		return (int)report_list_read((struct list_reader *)fi->fh, buf, size, off);
	case N_KEYSET: {
		const struct fuse_ctx *c = fs_ctx();
		ssize_t n;

		size_t done, end;
		bool whole = false;

		s = (struct seal *)fi->fh;
		n = sealcache_read(s, buf, size, off);
		/* A read extends what was read from the start only if it
		 * begins within it; the one that makes it whole is the backup. */
		end = n > 0 ? (size_t)off + (size_t)n : 0;
		done = __atomic_load_n(&s->done, __ATOMIC_RELAXED);
		while ((size_t)off <= done && end > done) {
			if (__atomic_compare_exchange_n(&s->done, &done, end, false, __ATOMIC_RELAXED,
							__ATOMIC_RELAXED)) {
				whole = end >= s->len;
				break;
			}
		}
		if (whole)
			sealcache_read_to_end(fs_kfs()->sc, name, s, c->pid, c->uid);
		return (int)n;
	}
	case N_STAGED: {
		const char *file;
		int dir = fs_staged_dir(path, &file);

		return stage_read(fs_kfs()->stage, dir, file, buf, size, off);
	}
	default:
		return -EBADF;
	}
}

static int fs_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	char name[KEYSET_NAME_MAX + 1];
	struct keyfs *k = fs_kfs();
	char *cmd;
	int ret;

	(void)fi;
	if (fs_classify(path, name) == N_STAGED) {
		const char *file;
		int dir = fs_staged_dir(path, &file);

		return stage_write(k->stage, dir, file, buf, size, off);
	}
	if (fs_classify(path, name) != N_CONTROL)
		return -EBADF;
	if (!fs_caller_is_owner(k))
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

static int fs_release(const char *path, struct fuse_file_info *fi)
{
	char name[KEYSET_NAME_MAX + 1];
	struct text *t;

	switch (fs_classify(path, name)) {
	case N_KEYSET:
		sealcache_put((struct seal *)fi->fh);
		break;
	case N_LIST:
		report_list_close((struct list_reader *)fi->fh);
		break;
	case N_CONTROL:
	case N_README:
	case N_METRICS:
		t = (struct text *)fi->fh;
		if (t) {
			free(t->buf);
			free(t);
		}
		break;
	case N_STAGED: {
		const char *file;
		int dir = fs_staged_dir(path, &file);

		stage_release(fs_kfs()->stage, dir, file);
		break;
	}
	default:
		break;
	}
	return 0;
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

const struct fuse_operations fs_ops = {
	.getattr = fs_getattr,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
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
