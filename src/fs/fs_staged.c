/* Files written into import/ and verify/: the FUSE side of staging
 * (stage.h). Processing happens at flush, so the outcome is close(2)'s. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "fs_priv.h"

int fs_getattr_staged(struct keyfs *k, const char *path, struct stat *st)
{
	struct stage_attr a;
	const char *file;
	int dir, ret;

	dir = fs_staged_dir(path, &file);
	ret = stage_getattr(k->stage, dir, file, &a);
	if (ret)
		return ret;
	/* inode numbers below the keysets' range, per name */
	fs_fill_file(k, st, (sealcache_ino(path) >> 2) | (1ULL << 62), a.mode, a.size, a.mtime);
	return 0;
}

int fs_open_staged(const char *path, struct fuse_file_info *fi, bool create, mode_t mode)
{
	struct keyfs *k = fs_kfs();
	const char *file;
	int dir;

	if (!fs_caller_is_owner(k))
		return -EACCES;
	dir = fs_staged_dir(path, &file);
	if (dir < 0)
		return -EACCES;
	/* Processing is per flush, never from the page cache's view. */
	fi->direct_io = 1;
	return stage_open(k->stage, dir, file, create, fi->flags & O_EXCL, fi->flags & O_TRUNC, mode);
}

int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	char name[KEYSET_NAME_MAX + 1];
	const char *file;
	int dir;

	(void)fi;
	dir = fs_staged_dir(path, &file);
	if (dir >= 0)
		return stage_truncate(fs_kfs()->stage, dir, file, size);
	/* "echo cmd > .control" truncates first; there is nothing to cut. */
	return fs_classify(path, name) == N_CONTROL ? 0 : -EACCES;
}

/* The outcome of an import reaches the writer here, as close(2)'s errno:
 * release runs later and its errors are dropped by the kernel. */
int fs_flush(const char *path, struct fuse_file_info *fi)
{
	const char *file;
	int dir;

	(void)fi;
	dir = fs_staged_dir(path, &file);
	if (dir < 0)
		return 0;
	return stage_flush(fs_kfs()->stage, dir, file);
}

/* chmod, chown, utimens on staged files succeed and keep only what
 * getattr shows: tar, rsync -a and cp -a fail if they do not. */
int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	const char *file;
	int dir;

	(void)fi;
	dir = fs_staged_dir(path, &file);
	return dir < 0 ? -EPERM : stage_setattr(fs_kfs()->stage, dir, file, &mode, NULL);
}

int fs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	struct stage_attr a;
	const char *file;
	int dir;

	(void)uid;
	(void)gid;
	(void)fi;
	dir = fs_staged_dir(path, &file);
	return dir < 0 ? -EPERM : stage_getattr(fs_kfs()->stage, dir, file, &a);
}

int fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	const char *file;
	time_t mtime;
	int dir;

	(void)fi;
	dir = fs_staged_dir(path, &file);
	if (dir < 0)
		return -EPERM;
	mtime = tv[1].tv_nsec == UTIME_NOW || tv[1].tv_nsec == UTIME_OMIT ? time(NULL) : tv[1].tv_sec;
	return stage_setattr(fs_kfs()->stage, dir, file, NULL, &mtime);
}

int fs_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
	const char *file;

	(void)mode;
	(void)off;
	(void)len;
	(void)fi;
	return fs_staged_dir(path, &file) < 0 ? -EOPNOTSUPP : 0;
}

int fs_setxattr(const char *path, const char *name, const char *value, size_t size, int flags)
{
	(void)path;
	(void)name;
	(void)value;
	(void)size;
	(void)flags;
	return -ENOTSUP; /* cp -a treats this as "no ACLs here" */
}

int fs_unlink(const char *path)
{
	const char *file;
	int dir;

	dir = fs_staged_dir(path, &file);
	return dir < 0 ? -EPERM : stage_unlink(fs_kfs()->stage, dir, file);
}

int fs_rename(const char *from, const char *to, unsigned int flags)
{
	const char *ffile, *tfile;
	int fdir, tdir;

	fdir = fs_staged_dir(from, &ffile);
	tdir = fs_staged_dir(to, &tfile);
	if (fdir < 0 || tdir < 0)
		return -EPERM;
	if (fdir != tdir)
		return -EXDEV;
	if (flags)
		return -EINVAL;
	return stage_rename(fs_kfs()->stage, fdir, ffile, tfile);
}

int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	return fs_open_staged(path, fi, true, mode);
}
