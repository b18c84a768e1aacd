/* Running a keyset's on_activate command after keys were installed, or
 * a command keyset's programs: split on spaces into argv (no shell),
 * stdin /dev/null, stdout and stderr captured, killed (its whole process
 * group) past a timeout. */
#ifndef KEYFS_HOOK_H
#define KEYFS_HOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#define HOOK_TIMEOUT 60		/* seconds */
#define HOOK_ARGS_MAX 64
#define HOOK_CMD_MAX 1023	/* bytes of a command line */
#define HOOK_OUTPUT_MAX 1024	/* bytes of output kept */
/* Bytes of output read and thrown away beyond HOOK_OUTPUT_MAX; past
 * them the pipe is closed, so a command that writes without end gets
 * EPIPE (or SIGPIPE) rather than a daemon thread reading it for the
 * whole timeout. */
#define HOOK_DRAIN_MAX (4 << 20)
/* Where a program is looked for when its environment has no PATH. */
#define HOOK_PATH_DEFAULT "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct hook_result {
	time_t when;		/* 0: never ran */
	int status;		/* exit status, 128 + signal, or -errno if it could not start */
	bool timed_out;		/* killed, with its process group, at the timeout */
	/* How it ended, in parts, for callers that report it: */
	int start_error;	/* errno if it could not start (ENOENT: no such program), else 0 */
	int exit_code;		/* its exit code, or -1: ended by a signal, or never ran */
	int term_signal;	/* the signal that ended it (SIGKILL at a timeout), else 0 */
	bool output_cut;	/* it wrote more than output holds */
	size_t output_len;	/* bytes in output, without the NUL */
	char output[HOOK_OUTPUT_MAX + 1]; /* its start (its end: tail), NUL-terminated */
};

/* How hook_run_in() starts the command, beyond hook_run()'s defaults. */
struct hook_spec {
	int dirfd;		/* its working directory (fchdir); -1: keyfs' own */
	const char *user;	/* run as this user (uid, gid and supplementary groups from
				 * getpwnam_r/getgrouplist); NULL or "" or "root": keyfs' own user */
	char *const *envp;	/* its whole environment (NULL-terminated "K=V"); NULL: keyfs' own */
	int out_fd;		/* its stdout goes here; -1: with stderr into res->output */
	bool tail;		/* res->output keeps the last HOOK_OUTPUT_MAX bytes, not the first */
};

/* hook_run()'s defaults. */
#define HOOK_SPEC_INIT { .dirfd = -1, .out_fd = -1 }

/* Runs cmd and waits for the process itself (at most timeout seconds,
 * then SIGKILL to its process group). Once it has exited, what is
 * already in its output pipe is read and the rest is not waited for: a
 * daemon it left behind may hold the pipe open for good, and is left
 * running. Returns 0 if it exited 0, else -ECHILD (res says how it
 * ended), or, when it could not start (res->start_error set too),
 * -EINVAL (no words) / -E2BIG / -ENOMEM / a spawn error such as
 * -ENOENT. If this process ignores SIGCHLD the kernel reaps the command
 * itself and its exit status is lost: res->status is then -ECHILD,
 * with start_error 0. */
int hook_run(const char *cmd, int timeout, struct hook_result *res);

/* hook_run() as spec says. The user is changed (groups, gid, uid) before
 * the working directory, so a directory the user cannot enter fails
 * with EACCES rather than leaving it somewhere it cannot look. argv[0]
 * without a '/' is looked for in the PATH of its environment (the last
 * PATH= of envp, as a shell reading it sees it), else in
 * HOOK_PATH_DEFAULT; an empty PATH entry is the working directory, as
 * for execvp(). dirfd and out_fd need not be FD_CLOEXEC: the command
 * gets out_fd as its stdout and neither under its own number. With tail,
 * output past HOOK_DRAIN_MAX is still cut off (the pipe closed), and
 * output keeps the last bytes read before that. Errors as hook_run(),
 * and -ESRCH (with start_error) for a user this host does not have:
 * then nothing is run. */
int hook_run_in(const char *cmd, int timeout, const struct hook_spec *spec,
		struct hook_result *res);

/* hook_spawn.c, for hook.c: starts argv (from hook_split()) as spec
 * says, stdin /dev/null, stderr err, stdout spec->out_fd or else err, in
 * a process group of its own. 0 with *pid once the program runs, else
 * -errno: the user's lookup's, or the child's own (-ENOENT: no such
 * program, -EACCES) when it could not get as far as the exec. */
int hook_spawn(char *const argv[], const struct hook_spec *spec, int err, pid_t *pid);

/* Splits cmd on spaces and tabs into argv, pointers into buf (size
 * bytes), NULL-terminated. 0, -E2BIG if cmd does not fit buf or has more
 * than HOOK_ARGS_MAX words, -EINVAL if it has none. */
int hook_split(const char *cmd, char *buf, size_t size, char *argv[static HOOK_ARGS_MAX + 1]);

/* One line: "exited 0 at 2024-..Z: output..." (output's newlines as
 * "; "). */
void hook_describe(const struct hook_result *res, char *buf, size_t size);

#endif
