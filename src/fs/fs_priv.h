/* Internals shared by the FUSE layer's files: fs_path.c (what a path
 * names, the attributes of fixed nodes), fs_staged.c (files written into
 * import/ and verify/) and fs.c (the rest, and the operations table). */
#ifndef KEYFS_FS_PRIV_H
#define KEYFS_FS_PRIV_H

#include <limits.h>

#include "fs.h"

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
	N_METRICS,	/* .metrics: the metrics text, no secrets */
	N_LIST,		/* .keysets: every keyset, a line each (keyfsctl list) */
};


#define PEM_SUFFIX ".pem"

/* The mounted keyfs, and the caller of the request the calling thread
 * serves (set by fs_ll.c). */
void fs_set_kfs(struct keyfs *k);
struct keyfs *fs_kfs(void);
void fs_set_caller(fuse_req_t req);
const struct fuse_ctx *fs_ctx(void);

/* fs_node.c: the node ids of what the kernel holds. A lookup of
 * parent/name told to the kernel (0: out of memory); FORGET's count;
 * "/dir/name" of ino, and of name below it if not NULL (-ENOENT once
 * unlinked, -ENAMETOOLONG past PATH_MAX); unlink and rename, so that the
 * node the kernel holds names the new path and no node the old; the id
 * of dir/name (dir a directory of the root) if held, else 0; and freeing
 * every node at the session's end. */
fuse_ino_t fs_node_ref(fuse_ino_t parent, const char *name);
void fs_node_unref(fuse_ino_t ino, uint64_t count);
int fs_node_path(fuse_ino_t ino, const char *name, char path[static PATH_MAX]);
void fs_node_unlink(fuse_ino_t parent, const char *name);
void fs_node_rename(fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		    const char *newname);
fuse_ino_t fs_node_find(const char *dir, const char *name);
void fs_node_free_all(void);
/* Drops what the kernel caches of dir/name (dir a directory of the
 * root), if it holds it. */
void fs_invalidate(struct keyfs *k, const char *dir, const char *name);

/* For import/<file> and verify/<file>: which staging directory, and the
 * file name; -1 for any other path. */
int fs_staged_dir(const char *path, const char **file);
/* Classifies a path; for N_KEYSET, name receives the keyset name. */
enum node fs_classify(const char *path, char name[static KEYSET_NAME_MAX + 1]);
bool fs_caller_is_owner(struct keyfs *k);
void fs_fill_dir(struct keyfs *k, struct stat *st, ino_t ino, mode_t mode);
void fs_fill_file(struct keyfs *k, struct stat *st, ino_t ino, mode_t mode, size_t size,
	       time_t mtime);

/* fs_staged.c */
int fs_getattr_staged(struct keyfs *k, const char *path, struct stat *st);
int fs_open_staged(const char *path, struct fuse_file_info *fi, bool create, mode_t mode);
int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi);
int fs_flush(const char *path, struct fuse_file_info *fi);
int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi);
int fs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi);
int fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi);
int fs_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi);
int fs_setxattr(const char *path, const char *name, const char *value, size_t size, int flags);
int fs_unlink(const char *path);
int fs_rename(const char *from, const char *to, unsigned int flags);
int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi);

#endif
