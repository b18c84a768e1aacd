/* The keyfs tree's paths: what a path names, who may write, and the
 * attributes of nodes. */
#include <string.h>

#include "fs_priv.h"

static struct keyfs *kfs;
/* The request the calling thread serves: its caller. */
static __thread const struct fuse_ctx *caller;

void fs_set_kfs(struct keyfs *k)
{
	kfs = k;
}

struct keyfs *fs_kfs(void)
{
	return kfs;
}

void fs_set_caller(fuse_req_t req)
{
	caller = fuse_req_ctx(req);
}

const struct fuse_ctx *fs_ctx(void)
{
	return caller;
}

/* For import/<file> and verify/<file>: which staging directory, and the
 * file name; -1 for any other path. */
int fs_staged_dir(const char *path, const char **file)
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
enum node fs_classify(const char *path, char name[static KEYSET_NAME_MAX + 1])
{
	const char *file;
	static const struct { const char *path; enum node n; } fixed[] = {
		{ "/", N_ROOT }, { "/.control", N_CONTROL }, { "/export", N_EXPORT },
		{ "/import", N_IMPORT }, { "/verify", N_VERIFY }, { "/export/README.txt", N_README },
		{ "/.metrics", N_METRICS }, { "/.keysets", N_LIST },
	};
	const char *base;
	size_t i, len;

	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (!strcmp(path, fixed[i].path))
			return fixed[i].n;
	if (fs_staged_dir(path, &file) >= 0)
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
bool fs_caller_is_owner(struct keyfs *k)
{
	uid_t uid = fs_ctx()->uid;

	return uid == k->uid || uid == 0;
}

void fs_fill_dir(struct keyfs *k, struct stat *st, ino_t ino, mode_t mode)
{
	st->st_ino = ino;
	st->st_mode = S_IFDIR | mode;
	st->st_nlink = 2;
	st->st_mtime = st->st_ctime = st->st_atime = k->started;
}

void fs_fill_file(struct keyfs *k, struct stat *st, ino_t ino, mode_t mode, size_t size,
		      time_t mtime)
{
	st->st_ino = ino;
	st->st_mode = S_IFREG | mode;
	st->st_nlink = 1;
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	st->st_mtime = st->st_ctime = st->st_atime = mtime ? mtime : k->started;
}
