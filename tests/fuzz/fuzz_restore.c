/* libFuzzer target: a restore end to end, from the tar to the disk. The
 * input is unpacked with bundle_unpack() as an import does and, when
 * accepted, written with keytree_write() into a fresh directory "t" of a
 * private temporary root, beside a canary directory. Then the root is
 * walked with lstat() and the target aborts unless:
 * - the root holds only "canary" and "t", and the canary tree is what
 *   it was (names, types, inodes, modes, owners, sizes, times, contents
 *   and link targets: a change through any link or name shows in ctime);
 * - below "t": only regular files, directories and symlinks; no setuid,
 *   setgid or sticky bit; no security.capability xattr; no file with a
 *   second hard link; no symlink that resolves (realpath, or for one
 *   that dangles: the deepest directory it reaches) outside "t";
 * - after a write that succeeded, the tree holds exactly the keyset's
 *   members, each of its type;
 * - keytree_remove() leaves the root as it was.
 *
 * The root is made once per process in /dev/shm where there is one
 * (tmpfs: keytree_write fsyncs every file and directory, which on a disk
 * would make each run slow), else in $TMPDIR, and removed at exit; a
 * crash leaves it, named in the message, for a look. Run as root, as
 * scripts/fuzz does here, owners in the archive are given too. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/bundle.h"
#include "keyfs/keytree.h"

/* as import does with the default import.max_size */
#define MAX_MEMBER (1u << 20)
/* the canary tree is small and fixed */
#define CANARY_MAX 16
/* entries below "t": keytree_write's bound, and room for temporaries */
#define TREE_MAX (2 * KEYSET_MEMBERS_MAX + 16)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* paths and links are bounded by KEYSET_PATH_MAX and KEYSET_LINK_MAX;
 * a temporary's name in a long path takes a little more */
#define ENTRY_PATH_MAX 512

struct entry {
	char path[ENTRY_PATH_MAX];	/* relative to the tree walked; "" is its top */
	struct stat st;
	char link[ENTRY_PATH_MAX];	/* symlink target */
	uint8_t hash[crypto_generichash_BYTES]; /* a file's contents */
};

struct tree {
	struct entry *e;
	size_t n, cap;
};

static char root[PATH_MAX], target[PATH_MAX];
static int root_fd = -1;
static struct stat root_st;
static struct tree canary;

static void fail(const char *what, const char *path)
{
	fprintf(stderr, "fuzz_restore: %s: %s\n", what, path);
	abort();
}

static void hash_file(const char *path, uint8_t out[static crypto_generichash_BYTES])
{
	crypto_generichash_state h;
	uint8_t buf[4096];
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		fail("cannot open", path);
	crypto_generichash_init(&h, NULL, 0, crypto_generichash_BYTES);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		crypto_generichash_update(&h, buf, (size_t)n);
	close(fd);
	if (n < 0)
		fail("cannot read", path);
	crypto_generichash_final(&h, out, crypto_generichash_BYTES);
}

/* Walks base/rel and below into t, without following links. */
static void walk(const char *base, const char *rel, struct tree *t)
{
	char abs[PATH_MAX * 2], child[ENTRY_PATH_MAX];
	struct entry *e;
	struct dirent *d;
	DIR *dir;
	ssize_t n;

	if (t->n == t->cap)
		fail("too many entries", base);
	e = &t->e[t->n++];
	memset(e, 0, sizeof(*e));
	snprintf(e->path, sizeof(e->path), "%s", rel);
	snprintf(abs, sizeof(abs), "%s%s%s", base, *rel ? "/" : "", rel);
	if (lstat(abs, &e->st))
		fail("cannot lstat", abs);
	if (S_ISLNK(e->st.st_mode)) {
		n = readlink(abs, e->link, sizeof(e->link));
		if (n < 0 || (size_t)n == sizeof(e->link))
			fail("cannot readlink", abs);
		e->link[n] = '\0';
	} else if (S_ISREG(e->st.st_mode)) {
		hash_file(abs, e->hash);
	}
	if (!S_ISDIR(e->st.st_mode))
		return;
	/* a walker that is not root must get into a directory restored 0
	 * (only then: a chmod changes ctime, which the canary compares) */
	if (geteuid() != 0 && (e->st.st_mode & 0700) != 0700)
		chmod(abs, (e->st.st_mode & 07777) | 0700);
	dir = opendir(abs);
	if (!dir)
		fail("cannot open directory", abs);
	while ((d = readdir(dir))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		if ((size_t)snprintf(child, sizeof(child), "%s%s%s", rel, *rel ? "/" : "",
				     d->d_name) >= sizeof(child))
			fail("path too long", abs);
		walk(base, child, t);
	}
	closedir(dir);
}

static bool same_time(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static const struct entry *find(const struct tree *t, const char *path)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (!strcmp(t->e[i].path, path))
			return &t->e[i];
	return NULL;
}

/* The root holds "canary" and, if t_present, "t"; the canary is as it
 * was made. */
static void check_root(bool t_present)
{
	struct entry e[CANARY_MAX];
	struct tree now = { e, 0, CANARY_MAX };
	size_t i, names = 0;
	struct dirent *d;
	struct stat st;
	DIR *dir;

	if (lstat(root, &st) || st.st_ino != root_st.st_ino || st.st_mode != root_st.st_mode ||
	    st.st_uid != root_st.st_uid || st.st_gid != root_st.st_gid)
		fail("the temporary root changed", root);
	dir = opendir(root);
	if (!dir)
		fail("cannot open directory", root);
	while ((d = readdir(dir))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		if (strcmp(d->d_name, "canary") && (!t_present || strcmp(d->d_name, "t")))
			fail("created outside the target directory", d->d_name);
		names++;
	}
	closedir(dir);
	if (names != 1u + t_present)
		fail("an entry of the temporary root is missing", root);
	walk(root, "canary", &now);
	if (now.n != canary.n)
		fail("entries added to or removed from", "canary");
	for (i = 0; i < now.n; i++) {
		const struct entry *a = find(&canary, now.e[i].path), *b = &now.e[i];

		if (!a || a->st.st_ino != b->st.st_ino || a->st.st_mode != b->st.st_mode ||
		    a->st.st_uid != b->st.st_uid || a->st.st_gid != b->st.st_gid ||
		    a->st.st_size != b->st.st_size || a->st.st_nlink != b->st.st_nlink ||
		    !same_time(a->st.st_mtim, b->st.st_mtim) ||
		    !same_time(a->st.st_ctim, b->st.st_ctim) || strcmp(a->link, b->link) ||
		    memcmp(a->hash, b->hash, sizeof(a->hash)))
			fail("changed", b->path);
	}
}

static bool inside(const char *real)
{
	size_t n = strlen(target);

	return !strncmp(real, target, n) && (real[n] == '\0' || real[n] == '/');
}

/* Where does the link at abs (in a directory of real components) lead?
 * Its realpath; for a link that dangles, the deepest existing directory
 * on its way, where an O_CREAT through it would create. */
static bool lands_inside(const char *abs, const char *link)
{
	char j[PATH_MAX * 3], real[PATH_MAX], *slash;

	if (link[0] == '/')
		snprintf(j, sizeof(j), "%s", link);
	else
		snprintf(j, sizeof(j), "%.*s/%s", (int)(strrchr(abs, '/') - abs), abs, link);
	for (;;) {
		if (realpath(j, real))
			return inside(real);
		if (errno == ELOOP || errno == ENAMETOOLONG)
			return true; /* the kernel's resolution fails too */
		if (errno != ENOENT && errno != ENOTDIR)
			fail("cannot resolve link", abs);
		slash = strrchr(j, '/');
		if (!slash)
			return false;
		if (slash == j)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
}

/* Below "t": nothing a restore must never make. After a write that
 * succeeded, exactly the keyset's members. */
static void check_target(const struct keyset *ks, bool written)
{
	static struct entry e[TREE_MAX];
	struct tree t = { e, 0, TREE_MAX };
	char abs[PATH_MAX * 2];
	size_t i;

	walk(target, "", &t);
	for (i = 0; i < t.n; i++) {
		const struct entry *x = &t.e[i];
		mode_t fmt = x->st.st_mode & S_IFMT;

		snprintf(abs, sizeof(abs), "%s%s%s", target, *x->path ? "/" : "", x->path);
		if (fmt != S_IFREG && fmt != S_IFDIR && fmt != S_IFLNK)
			fail("special file", abs);
		if (x->st.st_mode & (S_ISUID | S_ISGID | S_ISVTX))
			fail("setuid, setgid or sticky bit", abs);
		if (fmt == S_IFREG && x->st.st_nlink != 1)
			fail("hard-linked file", abs);
		if (lgetxattr(abs, "security.capability", NULL, 0) >= 0 ||
		    (errno != ENODATA && errno != ENOTSUP))
			fail("security.capability restored", abs);
		if (fmt == S_IFLNK && !lands_inside(abs, x->link))
			fail("symlink resolves outside the target directory", abs);
		if (written && *x->path) {
			const struct keyset_member *m = keyset_find(ks, x->path);

			if (!m || (m->type == KEYSET_FILE) != (fmt == S_IFREG) ||
			    (m->type == KEYSET_DIR) != (fmt == S_IFDIR))
				fail("not a member of the keyset, or not of its type", abs);
		}
	}
	if (written && t.n != ks->n + 1)
		fail("members missing from", target);
}

static void cleanup(void)
{
	if (root_fd >= 0) {
		keytree_remove(root_fd, "t");
		keytree_remove(root_fd, "canary");
		close(root_fd);
		rmdir(root);
	}
}

static void make_file(const char *name, const char *text, mode_t mode)
{
	int fd = openat(root_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || close(fd))
		fail("cannot make", name);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static struct entry e[CANARY_MAX];
	const char *tmp = getenv("TMPDIR");
	char dir[PATH_MAX];
	struct stat st;

	(void)argc;
	(void)argv;
	if (sodium_init() < 0)
		abort();
	if (!stat("/dev/shm", &st) && S_ISDIR(st.st_mode) && !access("/dev/shm", W_OK))
		tmp = "/dev/shm";
	snprintf(dir, sizeof(dir), "%s/keyfs-fuzz-restore-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir) || !realpath(dir, root))
		fail("cannot make a temporary root", dir);
	snprintf(target, sizeof(target), "%s/t", root);
	root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0 || fstat(root_fd, &root_st))
		fail("cannot open", root);
	atexit(cleanup);
	/* what a restore that escaped would most likely hit: a sibling
	 * with keys, a directory and links */
	if (mkdirat(root_fd, "canary", 0755) || mkdirat(root_fd, "canary/dir", 0700) ||
	    symlinkat("key", root_fd, "canary/link") || symlinkat("..", root_fd, "canary/up"))
		fail("cannot make", "canary");
	make_file("canary/key", "canary key\n", 0600);
	make_file("canary/dir/inner", "canary inner\n", 0644);
	canary = (struct tree){ e, 0, CANARY_MAX };
	walk(root, "canary", &canary);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct keyset ks = { 0 };
	int dfd, ret;

	if (bundle_unpack(data, size, MAX_MEMBER, &ks) != 0)
		return 0;
	if (mkdirat(root_fd, "t", 0700))
		fail("cannot make", target);
	dfd = openat(root_fd, "t", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		fail("cannot open", target);
	ret = keytree_write(dfd, &ks);
	close(dfd);
	check_root(true);
	check_target(&ks, ret == 0);
	keytree_remove(root_fd, "t");
	check_root(false);
	keyset_clear(&ks);
	return 0;
}
