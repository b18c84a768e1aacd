/* The on_activate command (hook.h). posix_spawn, not fork: the daemon is
 * multithreaded, and nothing but exec may run in a forked child. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keyfs/hook.h"

extern char **environ;

/* Splits cmd on spaces into argv (pointers into buf). */
static int split(const char *cmd, char *buf, size_t size, char *argv[static HOOK_ARGS_MAX + 1])
{
	size_t n = 0;
	char *save, *tok;

	if (snprintf(buf, size, "%s", cmd) >= (int)size)
		return -E2BIG;
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

static int spawn(char *const argv[], int out, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none;
	int ret;

	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out, 1);
	posix_spawn_file_actions_adddup2(&fa, out, 2);
	/* its own process group, so that a timeout kills what it started;
	 * the daemon's blocked signals are not the command's */
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
	ret = -posix_spawnp(pid, argv[0], &fa, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return ret;
}

/* Reads the output until EOF or the deadline; keeps its start. */
static void collect(int fd, long long deadline, struct hook_result *res)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t len = 0;
	char drain[512];
	ssize_t n;
	long long left;

	while ((left = deadline - now_ms()) > 0) {
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		if (len < HOOK_OUTPUT_MAX)
			n = read(fd, res->output + len, HOOK_OUTPUT_MAX - len);
		else
			n = read(fd, drain, sizeof(drain));
		if (n == 0)
			break;
		if (n > 0 && len < HOOK_OUTPUT_MAX)
			len += (size_t)n;
	}
	res->output[len] = '\0';
}

/* Waits for pid until the deadline, then kills its group. */
static void reap(pid_t pid, long long deadline, struct hook_result *res)
{
	int status;

	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (now_ms() >= deadline) {
			res->timed_out = true;
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			break;
		}
		usleep(10000);
	}
	res->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int hook_run(const char *cmd, int timeout, struct hook_result *res)
{
	char buf[1024], *argv[HOOK_ARGS_MAX + 1];
	long long deadline;
	int pipefd[2], ret;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	res->when = time(NULL);
	ret = split(cmd, buf, sizeof(buf), argv);
	if (ret)
		goto fail;
	if (pipe2(pipefd, O_CLOEXEC)) {
		ret = -errno;
		goto fail;
	}
	ret = spawn(argv, pipefd[1], &pid);
	close(pipefd[1]);
	if (ret) {
		close(pipefd[0]);
		goto fail;
	}
	deadline = now_ms() + (long long)timeout * 1000;
	collect(pipefd[0], deadline, res);
	close(pipefd[0]);
	reap(pid, deadline, res);
	return res->status == 0 && !res->timed_out ? 0 : -ECHILD;
fail:
	res->status = ret;
	return ret;
}

void hook_describe(const struct hook_result *res, char *buf, size_t size)
{
	char when[32], out[HOOK_OUTPUT_MAX * 2 + 1];
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
	if (res->status < 0)
		snprintf(buf, size, "could not start at %s: %s", when, strerror(-res->status));
	else if (res->timed_out)
		snprintf(buf, size, "killed after the timeout, started at %s%s%s", when,
			 *out ? ": " : "", out);
	else
		snprintf(buf, size, "exited %d at %s%s%s", res->status, when, *out ? ": " : "", out);
}
