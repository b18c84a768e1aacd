/* A command keyset's programs (command_run.h).
 *
 * The private directory is made below /run (tmpfs, root's, not sticky:
 * the program's user cannot rename it away) or, for a keyfs that cannot
 * write there, /tmp. Whatever the program leaves is hostile input: only
 * regular files it made itself (its owner, one link) are read, each
 * through a descriptor opened without following a link. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/keytree.h"
#include "keyfs/log.h"
#include "keyfs/replace.h"
#include "keyfs/secmem.h"

#include "command_run.h"

#define ENV_MAX 48
#define DEFAULT_PATH HOOK_PATH_DEFAULT

struct runner {
	const struct config_keyset *c;
	uid_t uid;
	gid_t gid;
	char home[PATH_MAX];
	char dir[PATH_MAX];	/* the private directory */
	int dfd;
	char envbuf[4096];
	char *envp[ENV_MAX + 1];
};

static const char *user_of(const struct config_keyset *c)
{
	return *c->user ? c->user : "root";
}

static int user_find(const struct config_keyset *c, struct runner *r)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (getpwnam_r(user_of(c), &pw, buf, sizeof(buf), &res) || !res)
		return -ESRCH;
	r->uid = pw.pw_uid;
	r->gid = pw.pw_gid;
	snprintf(r->home, sizeof(r->home), "%s", pw.pw_dir);
	return 0;
}

/* "K=V" with K a shell variable name. */
static bool env_word_valid(const char *w, size_t len)
{
	size_t i;

	for (i = 0; i < len && w[i] != '='; i++) {
		if (!(w[i] == '_' || (w[i] >= 'A' && w[i] <= 'Z') || (w[i] >= 'a' && w[i] <= 'z') ||
		      (i && w[i] >= '0' && w[i] <= '9')))
			return false;
	}
	return i > 0 && i < len;
}

int command_check(const struct config_keyset *c, const char **why)
{
	struct runner r = { .c = c };
	const char *w = c->env;
	size_t len;

	if (user_find(c, &r)) {
		*why = "user: no such user on this host";
		return -EINVAL;
	}
	while (*w) {
		len = strcspn(w, " \t");
		if (len && !env_word_valid(w, len)) {
			*why = "env: each word must be NAME=VALUE";
			return -EINVAL;
		}
		w += len;
		w += strspn(w, " \t");
	}
	return 0;
}

/* Appends "K=V" to r->envp; false when full. */
static bool env_add(struct runner *r, size_t *n, size_t *used, const char *k, const char *v,
		    size_t vlen)
{
	size_t need = strlen(k) + vlen + 2;

	if (*n == ENV_MAX || *used + need > sizeof(r->envbuf))
		return false;
	r->envp[(*n)++] = r->envbuf + *used;
	*used += (size_t)snprintf(r->envbuf + *used, need, "%s%.*s", k, (int)vlen, v) + 1;
	r->envp[*n] = NULL;
	return true;
}

/* Does env's words set NAME (given as "NAME=")? */
static bool env_sets(const char *env, const char *name)
{
	size_t n = strlen(name), len;

	while (*env) {
		len = strcspn(env, " \t");
		if (len >= n && !strncmp(env, name, n))
			return true;
		env += len;
		env += strspn(env, " \t");
	}
	return false;
}

/* The directory and the keyset, which env cannot change; env's words;
 * then what a login would give the user, where env did not set it (one
 * entry per name: getenv() takes the first, a shell the last). */
static int env_build(struct runner *r)
{
	const char *w = r->c->env, *u = user_of(r->c);
	const char *const login[][2] = {
		{ "PATH=", DEFAULT_PATH }, { "HOME=", r->home }, { "USER=", u }, { "LOGNAME=", u },
	};
	size_t n = 0, used = 0, len, i;
	bool ok;

	ok = env_add(r, &n, &used, "KEYFS_DIR=", r->dir, strlen(r->dir)) &&
	     env_add(r, &n, &used, "KEYFS_KEYSET=", r->c->name, strlen(r->c->name));
	while (ok && *w) {
		len = strcspn(w, " \t");
		if (len && strncmp(w, "KEYFS_DIR=", 10) && strncmp(w, "KEYFS_KEYSET=", 13))
			ok = env_add(r, &n, &used, "", w, len);
		w += len;
		w += strspn(w, " \t");
	}
	for (i = 0; ok && i < sizeof(login) / sizeof(login[0]); i++) {
		if (!env_sets(r->c->env, login[i][0]))
			ok = env_add(r, &n, &used, login[i][0], login[i][1], strlen(login[i][1]));
	}
	return ok ? 0 : -E2BIG;
}

static int dir_make(struct runner *r)
{
	static const char *const bases[] = { "/run", "/tmp" };
	size_t i, n;

	for (i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		/* mkdtemp()'s template: six X at the end */
		n = (size_t)snprintf(r->dir, sizeof(r->dir), "%s/keyfs-%s-", bases[i], r->c->name);
		if (n + 7 > sizeof(r->dir))
			return -ENAMETOOLONG;
		memset(r->dir + n, 'X', 6);
		r->dir[n + 6] = '\0';
		if (mkdtemp(r->dir))
			break;
	}
	if (i == sizeof(bases) / sizeof(bases[0]))
		return -errno;
	r->dfd = open(r->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (r->dfd < 0 || fchown(r->dfd, r->uid, r->gid)) {
		int ret = -errno;

		if (r->dfd >= 0)
			close(r->dfd);
		r->dfd = -1;
		rmdir(r->dir);
		return ret;
	}
	return 0;
}

static void dir_remove(struct runner *r)
{
	if (r->dfd >= 0)
		close(r->dfd);
	r->dfd = -1;
	keytree_remove(AT_FDCWD, r->dir);
}

static int runner_init(struct runner *r, const struct config_keyset *c)
{
	int ret;

	memset(r, 0, sizeof(*r));
	r->c = c;
	r->dfd = -1;
	ret = user_find(c, r);
	if (ret == 0)
		ret = dir_make(r);
	if (ret == 0)
		ret = env_build(r);
	if (ret && r->dfd >= 0)
		dir_remove(r);
	return ret;
}

/* Runs cmd; 0 if it exited 0. why says how it failed. */
static int run(struct runner *r, const char *what, const char *cmd, int out_fd,
	       struct hook_result *res, char *why, size_t size)
{
	const struct hook_spec spec = {
		.dirfd = r->dfd, .user = user_of(r->c), .envp = r->envp, .out_fd = out_fd,
		.tail = true,
	};
	char desc[COMMAND_WHY_MAX];
	int ret;

	ret = hook_run_in(cmd, r->c->timeout ? r->c->timeout : CONFIG_TIMEOUT_DEFAULT, &spec, res);
	if (ret) {
		hook_describe(res, desc, sizeof(desc));
		snprintf(why, size, "%s %s", what, desc);
	}
	return ret;
}

/* One file the program left: read if it is a regular file it made. */
static int take_file(struct runner *r, const char *name, struct keyset *ks, size_t *total,
		     char *why, size_t size)
{
	size_t max = r->c->max_file_size ? r->c->max_file_size : KEYSET_FILE_MAX;
	uint8_t *data = NULL;
	struct stat st;
	ssize_t n = 0;
	size_t len = 0;
	int fd, ret;

	fd = openat(r->dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		ret = -errno;
		goto out;
	}
	ret = -EPERM;
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_uid != r->uid)
		goto out;
	ret = -EFBIG;
	if ((uint64_t)st.st_size > max || *total + (size_t)st.st_size > KEYSET_TOTAL_MAX) {
		snprintf(why, size, "backup_command left %s of %lld bytes, over the limit", name,
			 (long long)st.st_size);
		goto out;
	}
	ret = -ENOMEM;
	if (st.st_size && !(data = secmem_alloc((size_t)st.st_size)))
		goto out;
	while (len < (size_t)st.st_size &&
	       (n = read(fd, data + len, (size_t)st.st_size - len)) > 0)
		len += (size_t)n;
	ret = n < 0 ? -errno : 0;
	if (ret == 0)
		ret = keyset_add(ks, name, 0600, time(NULL), data, len);
	if (ret == 0)
		*total += len;
out:
	if (data)
		secmem_free(data);
	if (fd >= 0)
		close(fd);
	return ret;
}

/* The regular files in the directory become members; anything else is
 * named in the log and left out. */
static int take_files(struct runner *r, struct keyset *ks, size_t *total, char *why, size_t size)
{
	struct dirent *e;
	DIR *d;
	int fd, ret = 0;

	fd = dup(r->dfd);
	if (fd < 0 || !(d = fdopendir(fd))) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		return ret;
	}
	while (ret == 0 && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		ret = take_file(r, e->d_name, ks, total, why, size);
		if (ret == -EPERM || ret == -ELOOP || ret == -EINVAL || ret == -EEXIST) {
			log_msg(LOG_WARNING, "keyset %s: backup_command left \"%s\", which is not "
				"a regular file it made or not a name a keyset holds: left out",
				r->c->name, e->d_name);
			ret = 0;
		}
	}
	closedir(d);
	return ret;
}

/* Its stdout, kept in an unlinked file of keyfs' own, as member
 * backup_stdout; empty output is no member (a keyring that lost its
 * keys exports nothing). */
static int take_stdout(struct runner *r, int fd, struct keyset *ks, size_t *total, char *why,
		       size_t size)
{
	size_t max = r->c->max_file_size ? r->c->max_file_size : KEYSET_FILE_MAX;
	uint8_t *data = NULL;
	struct stat st;
	size_t len = 0;
	ssize_t n = 0;
	int ret;

	if (fstat(fd, &st))
		return -errno;
	if (st.st_size == 0)
		return 0;
	if ((uint64_t)st.st_size > max || *total + (size_t)st.st_size > KEYSET_TOTAL_MAX) {
		snprintf(why, size, "backup_command wrote %lld bytes, over the limit",
			 (long long)st.st_size);
		return -EFBIG;
	}
	if (!(data = secmem_alloc((size_t)st.st_size)))
		return -ENOMEM;
	while (len < (size_t)st.st_size &&
	       (n = pread(fd, data + len, (size_t)st.st_size - len, (off_t)len)) > 0)
		len += (size_t)n;
	ret = n < 0 ? -errno : keyset_add(ks, r->c->backup_stdout, 0600, time(NULL), data, len);
	if (ret == -EEXIST)
		snprintf(why, size, "backup_command left a file named %s, as backup_stdout is",
			 r->c->backup_stdout);
	if (ret == 0)
		*total += len;
	secmem_free(data);
	return ret;
}

int command_backup(const struct config_keyset *c, int tmpfd, struct keyset *ks,
		   struct hook_result *res, char *why, size_t size)
{
	struct runner r;
	size_t total = 0;
	int out = -1, ret;

	*why = '\0';
	memset(res, 0, sizeof(*res));
	ret = runner_init(&r, c);
	if (ret) {
		snprintf(why, size, "backup_command could not start: %s%s", strerror(-ret),
			 ret == -ESRCH ? " (no such user)" : "");
		return ret;
	}
	/* Its stdout is a member, or nowhere: a secret it prints (a key
	 * exported without backup_stdout) must not reach the status or
	 * the log, where its stderr goes. */
	if (*c->backup_stdout)
		out = openat(tmpfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	else
		out = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (out < 0) {
		ret = -errno;
		snprintf(why, size, "backup_command: its stdout: %s", strerror(-ret));
		goto out;
	}
	ret = run(&r, "backup_command", c->backup_command, out, res, why, size);
	if (ret == 0)
		ret = take_files(&r, ks, &total, why, size);
	if (ret == 0 && *c->backup_stdout)
		ret = take_stdout(&r, out, ks, &total, why, size);
	if (ret == 0 && ks->n == 0) {
		snprintf(why, size, "backup_command exited 0 but wrote nothing%s",
			 *c->backup_stdout ? " (its stdout was empty)" : "");
		ret = -ENODATA;
	}
	if (ret == 0) {
		strcpy(ks->name, c->name);
		keyset_sort(ks);
	} else if (!*why) {
		snprintf(why, size, "backup_command: %s", strerror(-ret));
	}
out:
	if (out >= 0)
		close(out);
	if (ret)
		keyset_clear(ks);
	dir_remove(&r);
	return ret;
}

/* A member into the directory, owned by the program's user. */
static int put_file(struct runner *r, const struct keyset_member *m)
{
	int fd, ret;

	fd = openat(r->dfd, m->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	ret = replace_write_all(fd, m->data, m->len);
	if (ret == 0 && fchown(fd, r->uid, r->gid))
		ret = -errno;
	close(fd);
	return ret;
}

int command_restore(const struct config_keyset *c, const struct keyset *ks,
		    struct hook_result *res, char *why, size_t size)
{
	struct runner r;
	size_t i;
	int ret;

	*why = '\0';
	memset(res, 0, sizeof(*res));
	if (!*c->restore_command) {
		snprintf(why, size, "the keyset has no restore_command: give the program the "
			 "version's members by hand (keyfs' state directory, versions/%s/)", c->name);
		return -ENOTSUP;
	}
	ret = runner_init(&r, c);
	if (ret) {
		snprintf(why, size, "restore_command could not start: %s%s", strerror(-ret),
			 ret == -ESRCH ? " (no such user)" : "");
		return ret;
	}
	for (i = 0; ret == 0 && i < ks->n; i++) {
		/* command keysets hold files at the top only (store_command.c) */
		if (ks->m[i].type != KEYSET_FILE || strchr(ks->m[i].name, '/'))
			ret = -EINVAL;
		else
			ret = put_file(&r, &ks->m[i]);
	}
	if (ret)
		snprintf(why, size, "restore_command: writing the members: %s", strerror(-ret));
	else
		ret = run(&r, "restore_command", c->restore_command, -1, res, why, size);
	dir_remove(&r);
	return ret;
}
