/* Running a hook's command (hook.h) and reading its output; starting it
 * is hook_spawn.c's.
 *
 * The wait is for the command's own process, not for the end of its
 * output: a command that starts a daemon (a service restart) leaves a
 * process holding the pipe, which must not keep an activation waiting
 * until the timeout. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keyfs/escape.h"
#include "keyfs/hook.h"

/* How often the exit is checked where no pidfd tells of it. */
#define HOOK_POLL_MS 10

int hook_split(const char *cmd, char *buf, size_t size, char *argv[static HOOK_ARGS_MAX + 1])
{
	size_t n = 0, len = strlen(cmd);
	char *save, *tok;

	if (len >= size)
		return -E2BIG;
	memcpy(buf, cmd, len + 1);
	for (tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		if (n == HOOK_ARGS_MAX)
			return -E2BIG;
		argv[n++] = tok;
	}
	argv[n] = NULL;
	return n ? 0 : -EINVAL;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A descriptor that polls readable once pid has exited, or -1 where the
 * kernel has none (before 5.3, or refused by a seccomp filter): the
 * caller then checks on an interval. pid is an unreaped child of ours,
 * so it cannot name another process yet. */
static int exit_fd(pid_t pid)
{
#ifdef SYS_pidfd_open
	long fd = syscall(SYS_pidfd_open, pid, 0);

	if (fd >= 0) {
		fcntl((int)fd, F_SETFD, FD_CLOEXEC);
		return (int)fd;
	}
#else
	(void)pid;
#endif
	return -1;
}

/* The output pipe's reader: keeps the start (or with tail, the end),
 * throws away the rest up to HOOK_DRAIN_MAX bytes. */
struct output {
	int fd;			/* -1 once closed */
	size_t dropped;
	bool tail;
	struct hook_result *res;
};

static void output_close(struct output *o)
{
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
}

/* With output full, keeps its last bytes: n more just read into buf. */
static void keep_tail(struct hook_result *res, const char *buf, size_t n)
{
	if (n >= HOOK_OUTPUT_MAX) {
		memcpy(res->output, buf + n - HOOK_OUTPUT_MAX, HOOK_OUTPUT_MAX);
		return;
	}
	memmove(res->output, res->output + n, HOOK_OUTPUT_MAX - n);
	memcpy(res->output + HOOK_OUTPUT_MAX - n, buf, n);
}

/* Reads what the pipe holds now (it is non-blocking): until it is
 * empty, at EOF, or past the bound, where it is closed. */
static void output_read(struct output *o)
{
	struct hook_result *res = o->res;
	char drain[4096];
	ssize_t n;

	while (o->fd >= 0) {
		if (res->output_len < HOOK_OUTPUT_MAX)
			n = read(o->fd, res->output + res->output_len,
				 HOOK_OUTPUT_MAX - res->output_len);
		else
			n = read(o->fd, drain, sizeof(drain));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			output_close(o);
			return;
		}
		if (res->output_len < HOOK_OUTPUT_MAX) {
			res->output_len += (size_t)n;
		} else {
			res->output_cut = true;
			o->dropped += (size_t)n;
			if (o->tail)
				keep_tail(res, drain, (size_t)n);
			if (o->dropped >= HOOK_DRAIN_MAX)
				output_close(o);
		}
	}
}

static void set_status(struct hook_result *res, int status)
{
	if (WIFEXITED(status)) {
		res->exit_code = WEXITSTATUS(status);
		res->status = res->exit_code;
	} else if (WIFSIGNALED(status)) {
		res->term_signal = WTERMSIG(status);
		res->status = 128 + res->term_signal;
	}
}

/* 1 once pid has exited (res has its status), 0 while it runs. */
static int exited(pid_t pid, struct hook_result *res, int flags)
{
	pid_t r;
	int status;

	do
		r = waitpid(pid, &status, flags);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return 0;
	if (r < 0) {
		/* ECHILD: SIGCHLD is ignored and the kernel reaped it */
		res->status = -errno;
		return 1;
	}
	set_status(res, status);
	return 1;
}

/* Waits for pid until the deadline, reading its output meanwhile; at
 * the deadline kills its process group. Then takes what the pipe holds
 * and stops: a process it left behind may keep the pipe open. */
static void wait_child(pid_t pid, struct output *o, long long deadline)
{
	int efd = exit_fd(pid);
	struct pollfd p[2];
	long long left;
	nfds_t n;

	for (;;) {
		if (exited(pid, o->res, WNOHANG))
			break;
		left = deadline - now_ms();
		if (left <= 0) {
			o->res->timed_out = true;
			kill(-pid, SIGKILL);
			exited(pid, o->res, 0);
			break;
		}
		n = 0;
		if (o->fd >= 0)
			p[n++] = (struct pollfd){ .fd = o->fd, .events = POLLIN };
		if (efd >= 0)
			p[n++] = (struct pollfd){ .fd = efd, .events = POLLIN };
		else if (left > HOOK_POLL_MS)
			left = HOOK_POLL_MS;
		/* n == 0 (pipe closed, no pidfd) sleeps the interval */
		if (poll(p, n, (int)left) > 0 && o->fd >= 0 && p[0].revents)
			output_read(o);
	}
	/* not waiting for EOF: whatever a process left behind writes
	 * later is not read */
	output_read(o);
	output_close(o);
	if (efd >= 0)
		close(efd);
}

/* Starts cmd: 0 with *pid, and *fd the non-blocking read end of its
 * output pipe. */
static int start(const char *cmd, const struct hook_spec *spec, pid_t *pid, int *fd)
{
	char buf[HOOK_CMD_MAX + 1], *argv[HOOK_ARGS_MAX + 1];
	int pipefd[2] = { -1, -1 }, ret;

	ret = hook_split(cmd, buf, sizeof(buf), argv);
	if (ret)
		goto out;
	if (pipe2(pipefd, O_CLOEXEC)) {
		ret = -errno;
		goto out;
	}
	/* only our end: the command's stays blocking, as it expects */
	if (fcntl(pipefd[0], F_SETFL, O_NONBLOCK)) {
		ret = -errno;
		goto out;
	}
	ret = hook_spawn(argv, spec, pipefd[1], pid);
	if (ret == 0) {
		*fd = pipefd[0];
		pipefd[0] = -1;
	}
out:
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	return ret;
}

int hook_run_in(const char *cmd, int timeout, const struct hook_spec *spec,
		struct hook_result *res)
{
	struct output o = { .fd = -1, .tail = spec->tail, .res = res };
	pid_t pid;
	int ret;

	memset(res, 0, sizeof(*res));
	res->when = time(NULL);
	res->exit_code = -1;
	ret = start(cmd, spec, &pid, &o.fd);
	if (ret) {
		res->status = ret;
		res->start_error = -ret;
		return ret;
	}
	wait_child(pid, &o, now_ms() + (long long)timeout * 1000);
	res->output[res->output_len] = '\0';
	return res->status == 0 && !res->timed_out ? 0 : -ECHILD;
}

int hook_run(const char *cmd, int timeout, struct hook_result *res)
{
	const struct hook_spec spec = HOOK_SPEC_INIT;

	return hook_run_in(cmd, timeout, &spec, res);
}

void hook_describe(const struct hook_result *res, char *buf, size_t size)
{
	char when[32], out[HOOK_OUTPUT_MAX * 2 + 1], shown[HOOK_OUTPUT_MAX * 4 + 1];
	struct tm tm;
	size_t i, o = 0;

	if (!res->when) {
		snprintf(buf, size, "not run yet");
		return;
	}
	gmtime_r(&res->when, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	for (i = 0; res->output[i] && o + 2 < sizeof(out); i++) {
		if (res->output[i] == '\n' && res->output[i + 1]) {
			out[o++] = ';';
			out[o++] = ' ';
		} else if (res->output[i] != '\n') {
			out[o++] = res->output[i];
		}
	}
	out[o] = '\0';
	/* the status report shows it: no line or terminal escape of its own */
	escape_str(shown, sizeof(shown), out, 0);
	if (res->status < 0)
		snprintf(buf, size, "could not start at %s: %s", when, strerror(-res->status));
	else if (res->timed_out)
		snprintf(buf, size, "killed after the timeout, started at %s%s%s", when,
			 *shown ? ": " : "", shown);
	else
		snprintf(buf, size, "exited %d at %s%s%s", res->status, when, *shown ? ": " : "",
			 shown);
}
