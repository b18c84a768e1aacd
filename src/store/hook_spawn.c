/* Starting a hook's command (hook.h): as another user, in a directory,
 * with an environment of its own. posix_spawn cannot change the user, so
 * this forks. The daemon is multithreaded: in the child another thread
 * may have held any lock (malloc's, stdio's, NSS's) at the fork, so the
 * child makes system calls and nothing else. Whatever allocates or
 * reads files (the user's ids, the program's path) is done before the
 * fork, into a struct child the child only reads. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keyfs/hook.h"

/* Bound on getpwnam_r()'s buffer and on a user's groups. */
#define PW_BUF_MAX (1 << 20)
#define GROUPS_MAX 65536

extern char **environ;

/* Everything the child does, decided by the parent. */
struct child {
	char *const *argv;
	char *const *envp;
	char **paths;		/* where to try argv[0], in order, NULL-terminated */
	int dirfd;		/* -1: stay where keyfs is */
	int in, out, err;	/* its stdin, stdout, stderr: all > 2, FD_CLOEXEC */
	int theirs[2];		/* the caller's dirfd and out_fd, or -1: closed
				 * in the child, as they may lack FD_CLOEXEC */
	bool setid;
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	int ngroups;
};

/* A resource error, rather than "no such user" (which getpwnam_r()
 * may tell as 0, ENOENT, ESRCH, EBADF or EPERM). */
static bool lookup_failed(int err)
{
	return err == EIO || err == ENOMEM || err == EMFILE || err == ENFILE || err == EINTR;
}

/* c's ids for the user name: -ESRCH if this host has no such user. */
static int user_ids(const char *name, struct child *c)
{
	struct passwd pw, *found = NULL;
	size_t size = 4096;
	char *buf = NULL, *grown;
	gid_t *groups;
	int err, n = 32, want;

	for (;;) {
		grown = realloc(buf, size);
		if (!grown) {
			err = ENOMEM;
			goto out;
		}
		buf = grown;
		err = getpwnam_r(name, &pw, buf, size, &found);
		if (err != ERANGE || size >= PW_BUF_MAX)
			break;
		size *= 2;
	}
	if (!found) {
		err = lookup_failed(err) || err == ERANGE ? err : ESRCH;
		goto out;
	}
	for (;;) {
		groups = reallocarray(c->groups, (size_t)n, sizeof(*groups));
		if (!groups) {
			err = ENOMEM;
			goto out;
		}
		c->groups = groups;
		want = n;
		if (getgrouplist(name, pw.pw_gid, groups, &want) >= 0)
			break;
		/* glibc says how many it needs; others may not */
		if (n >= GROUPS_MAX) {
			err = E2BIG;
			goto out;
		}
		n = want > n ? want : 2 * n;
	}
	c->setid = true;
	c->uid = pw.pw_uid;
	c->gid = pw.pw_gid;
	c->ngroups = want;
	err = 0;
out:
	free(buf);
	return -err;
}

/* The value of the last PATH= in envp, or NULL. The last, as a shell
 * reading the environment ends up with it. */
static const char *env_path(char *const *envp)
{
	const char *path = NULL;

	for (; *envp; envp++) {
		if (!strncmp(*envp, "PATH=", 5))
			path = *envp + 5;
	}
	return path;
}

/* Where to try argv0, in one allocation: itself if it has a '/', else in
 * each directory of path ("" is the working directory, as for
 * execvp()). */
static char **program_paths(const char *argv0, const char *path)
{
	size_t n = 1, len = strlen(argv0), i;
	const char *p, *end;
	char **v, *s;

	if (strchr(argv0, '/'))
		path = "";
	for (p = path; *p; p++)
		n += *p == ':';
	v = malloc((n + 1) * sizeof(*v) + strlen(path) + n * (len + 2));
	if (!v)
		return NULL;
	s = (char *)(v + n + 1);
	for (i = 0, p = path; i < n; i++, p = end + 1) {
		end = strchrnul(p, ':');
		v[i] = s;
		if (end > p) {
			memcpy(s, p, (size_t)(end - p));
			s += end - p;
			*s++ = '/';
		}
		memcpy(s, argv0, len + 1);
		s += len + 1;
	}
	v[n] = NULL;
	return v;
}

/* Fills c for argv as spec says; its fds are the caller's to close. */
static int child_prepare(struct child *c, char *const argv[], const struct hook_spec *spec,
			 int err)
{
	const char *path;
	int ret;

	c->argv = argv;
	c->dirfd = spec->dirfd;
	c->theirs[0] = spec->dirfd;
	c->theirs[1] = spec->out_fd;
	if (spec->user && *spec->user && strcmp(spec->user, "root")) {
		ret = user_ids(spec->user, c);
		if (ret)
			return ret;
	}
	if (spec->envp) {
		c->envp = spec->envp;
		path = env_path(spec->envp);
	} else {
		/* keyfs' own, as posix_spawnp() would */
		c->envp = environ;
		path = getenv("PATH");
	}
	c->paths = program_paths(argv[0], path ? path : HOOK_PATH_DEFAULT);
	if (!c->paths)
		return -ENOMEM;
	c->in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (c->in < 0)
		return -errno;
	/* dup2() onto 0-2 must not meet one of them: a number > 2, and our
	 * own copy of out_fd, so that it is FD_CLOEXEC */
	c->err = err;
	c->out = fcntl(spec->out_fd >= 0 ? spec->out_fd : err, F_DUPFD_CLOEXEC, 3);
	return c->out < 0 ? -errno : 0;
}

/* execvp()'s search over c->paths: past a program that is not there (or
 * not ours to run: EACCES is kept for the end), on to the next. Returns
 * only on failure, errno set. */
static void child_exec(const struct child *c)
{
	char *const *p;
	int err = ENOENT;

	for (p = c->paths; *p; p++) {
		execve(*p, c->argv, c->envp);
		if (errno == EACCES)
			err = EACCES;
		else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE)
			return;
	}
	errno = err;
}

/* The child: system calls only (see the top). Tells the parent why it
 * could not exec through report, FD_CLOEXEC, so that an exec closes it
 * unwritten. */
static _Noreturn void child_run(const struct child *c, int report)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;
	int sig, i, err;

	/* the daemon's ignored signals are not the command's (SIGPIPE
	 * ignored would keep a writer to a closed pipe going); its
	 * handlers must not run here before the exec either */
	for (sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL);
	/* its own process group, so that a timeout kills what it started */
	if (setpgid(0, 0))
		goto fail;
	if (c->setid && (setgroups((size_t)c->ngroups, c->groups) || setgid(c->gid) ||
			 setuid(c->uid)))
		goto fail;
	if (c->dirfd >= 0 && fchdir(c->dirfd))
		goto fail;
	if (dup2(c->in, 0) < 0 || dup2(c->out, 1) < 0 || dup2(c->err, 2) < 0)
		goto fail;
	for (i = 0; i < 2; i++) {
		if (c->theirs[i] > 2)
			close(c->theirs[i]);
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	child_exec(c);
fail:
	err = errno;
	while (write(report, &err, sizeof(err)) < 0 && errno == EINTR)
		;
	_exit(127);
}

/* Forks the child and waits until it has exec'ed, or says why not. */
static int child_start(const struct child *c, pid_t *pid)
{
	sigset_t all, old;
	int report[2], err, ret = 0;
	ssize_t n;

	if (pipe2(report, O_CLOEXEC))
		return -errno;
	/* no signal handler of ours may run in the child: blocked here,
	 * set to the default there before it unblocks them */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	*pid = fork();
	if (*pid == 0)
		child_run(c, report[1]);
	if (*pid < 0)
		ret = -errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(report[1]);
	if (ret)
		goto out;
	do
		n = read(report[0], &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	if (n == sizeof(err)) {
		ret = err > 0 ? -err : -EIO;
		while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
out:
	close(report[0]);
	return ret;
}

int hook_spawn(char *const argv[], const struct hook_spec *spec, int err, pid_t *pid)
{
	struct child c = { .in = -1, .out = -1 };
	int ret;

	ret = child_prepare(&c, argv, spec, err);
	if (ret == 0)
		ret = child_start(&c, pid);
	if (c.in >= 0)
		close(c.in);
	if (c.out >= 0)
		close(c.out);
	free(c.paths);
	free(c.groups);
	return ret;
}
