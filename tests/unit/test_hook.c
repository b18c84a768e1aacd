/* Unit test for hook.c: the wait is for the command's own process (a
 * daemon it leaves holding the output pipe does not hold hook_run()),
 * its exit status or signal is kept, a missing program is told apart
 * from a failing one, output is bounded, and a timeout kills the
 * command's whole process group.
 *
 * hook_run() runs no shell, so each case is a small script in a
 * private directory. This process is a child subreaper: what a script
 * leaves behind becomes our child, so the test can wait for it and see
 * how it ended. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hook.h"
#include "tap.h"

static char dir[] = "/tmp/keyfs-test-hook-XXXXXX";

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Writes an executable script dir/name; returns its path (static). */
static const char *script(const char *name, const char *body)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f || fprintf(f, "#!/bin/sh\n%s\n", body) < 0 || fclose(f) || chmod(path, 0755)) {
		perror(path);
		exit(1);
	}
	return path;
}

/* The pid a script wrote into dir/name, or -1. */
static pid_t read_pid(const char *name)
{
	char path[256];
	long pid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = -1;
	fclose(f);
	return (pid_t)pid;
}

/* Waits (at most 5 s) for pid, a child of ours as the subreaper; its
 * wait status, or -1 with errno ECHILD if it is no child of ours, else
 * EAGAIN. */
static int reap(pid_t pid)
{
	double end = now() + 5;
	int status;

	while (now() < end) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		if (r < 0)
			return -1;
		usleep(10000);
	}
	errno = EAGAIN;
	return -1;
}

static void test_output(void)
{
	struct hook_result res;
	int ret;

	ret = hook_run(script("echo", "echo hello; echo world >&2"), 5, &res);
	TAP_EQ_INT(ret, 0, "a command that exits 0: hook_run() returns 0");
	tap_ok(res.when != 0 && res.status == 0 && res.exit_code == 0 && res.term_signal == 0 &&
	       res.start_error == 0 && !res.timed_out, "exit code 0, no signal, started");
	tap_ok(!strcmp(res.output, "hello\nworld\n") && res.output_len == 12 && !res.output_cut,
	       "stdout and stderr kept: '%s'", res.output);
}

/* The command exits 3 and leaves a daemon holding its stdout. */
static void test_daemon(void)
{
	struct hook_result res;
	double t;
	pid_t pid;
	int ret;

	t = now();
	ret = hook_run(script("daemon", "echo started\nsleep 100 &\necho $! >\"$0.pid\"\nexit 3"),
		       30, &res);
	t = now() - t;
	TAP_EQ_INT(ret, -ECHILD, "a command that exits 3: -ECHILD");
	tap_ok(t < 1.5, "returns when the command exits, not when its daemon does (%.2f s)", t);
	tap_ok(res.status == 3 && res.exit_code == 3 && res.term_signal == 0 && !res.timed_out &&
	       res.start_error == 0, "exit code 3 kept (status %d)", res.status);
	tap_ok(!strcmp(res.output, "started\n") && !res.output_cut,
	       "output before the exit kept: '%s'", res.output);
	pid = read_pid("daemon.pid");
	tap_ok(pid > 0 && kill(pid, 0) == 0, "the daemon it left is not killed");
	if (pid > 0) {
		kill(pid, SIGKILL);
		reap(pid);
	}
}

static void test_signal(void)
{
	struct hook_result res;
	int ret;

	ret = hook_run(script("signal", "kill -TERM $$"), 5, &res);
	TAP_EQ_INT(ret, -ECHILD, "a command killed by a signal: -ECHILD");
	tap_ok(res.term_signal == SIGTERM && res.exit_code == -1 && res.status == 128 + SIGTERM &&
	       !res.timed_out, "its signal kept (signal %d, status %d)", res.term_signal,
	       res.status);
}

static void test_missing(void)
{
	struct hook_result res;
	char path[256];
	int ret;

	snprintf(path, sizeof(path), "%s/no-such-program arg", dir);
	ret = hook_run(path, 5, &res);
	TAP_EQ_INT(ret, -ENOENT, "a missing program: -ENOENT");
	tap_ok(res.start_error == ENOENT && res.status == -ENOENT && res.exit_code == -1 &&
	       res.when != 0, "could not start, ENOENT (start_error %d)", res.start_error);
	ret = hook_run("keyfs-no-such-program-in-path", 5, &res);
	tap_ok(ret == -ENOENT && res.start_error == ENOENT, "not found in PATH: ENOENT (%d)", ret);
	ret = hook_run(" \t ", 5, &res);
	tap_ok(ret == -EINVAL && res.start_error == EINVAL, "an empty command could not start");
}

static void test_bounded(void)
{
	struct hook_result res;
	double t;
	int ret;

	/* 1 MB of output: the start kept, the rest read and dropped */
	ret = hook_run(script("mega", "head -c 1048576 /dev/zero | tr '\\0' x"), 10, &res);
	TAP_EQ_INT(ret, 0, "a command writing 1 MB exits 0");
	tap_ok(res.output_len == HOOK_OUTPUT_MAX && strlen(res.output) == HOOK_OUTPUT_MAX &&
	       res.output[0] == 'x' && res.output_cut, "%d bytes kept, marked cut",
	       HOOK_OUTPUT_MAX);
	/* output without end: past HOOK_DRAIN_MAX the pipe is closed */
	t = now();
	ret = hook_run("yes", 20, &res);
	t = now() - t;
	tap_ok(ret == -ECHILD && !res.timed_out && t < 10, "endless output ends the command "
	       "well before the timeout (%.2f s, signal %d)", t, res.term_signal);
	tap_ok(res.term_signal == SIGPIPE, "with SIGPIPE");
	tap_ok(res.output_len == HOOK_OUTPUT_MAX && res.output_cut, "its output bounded too");
}

static void test_timeout(void)
{
	struct hook_result res;
	int ret, st;
	double t;
	pid_t pid;

	t = now();
	ret = hook_run(script("slow", "sleep 100 &\necho $! >\"$0.pid\"\necho waiting\nsleep 100"),
		       1, &res);
	t = now() - t;
	TAP_EQ_INT(ret, -ECHILD, "a command past its timeout: -ECHILD");
	tap_ok(t >= 0.9 && t < 3, "killed at the timeout (%.2f s)", t);
	tap_ok(res.timed_out && res.term_signal == SIGKILL && res.exit_code == -1,
	       "timed out, SIGKILL (signal %d)", res.term_signal);
	tap_ok(!strcmp(res.output, "waiting\n"), "output before the kill kept: '%s'", res.output);
	pid = read_pid("slow.pid");
	st = pid > 0 ? reap(pid) : -1;
	/* the shell may reap it itself, if it dies first: then it is gone */
	tap_ok(st == -1 ? pid > 0 && errno == ECHILD && kill(pid, 0) && errno == ESRCH
			: WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	       "what it started in its group is killed too");
}

static void test_split(void)
{
	char buf[64], *argv[HOOK_ARGS_MAX + 1], many[4 * HOOK_ARGS_MAX + 8];
	char big[HOOK_ARGS_MAX * 2 + 16];
	size_t i;

	tap_ok(hook_split("  a\tbb  c ", buf, sizeof(buf), argv) == 0 && !strcmp(argv[0], "a") &&
	       !strcmp(argv[1], "bb") && !strcmp(argv[2], "c") && !argv[3],
	       "hook_split() splits on spaces and tabs");
	TAP_EQ_INT(hook_split("", buf, sizeof(buf), argv), -EINVAL, "no words: -EINVAL");
	memset(many, 'a', 70);
	many[70] = '\0';
	TAP_EQ_INT(hook_split(many, buf, sizeof(buf), argv), -E2BIG, "longer than buf: -E2BIG");
	for (i = 0; i <= HOOK_ARGS_MAX; i++) {
		big[2 * i] = 'a';
		big[2 * i + 1] = ' ';
	}
	big[2 * HOOK_ARGS_MAX + 1] = '\0';
	TAP_EQ_INT(hook_split(big, many, sizeof(many), argv), -E2BIG,
		   "more than HOOK_ARGS_MAX words: -E2BIG");
	big[2 * HOOK_ARGS_MAX - 1] = '\0';
	tap_ok(hook_split(big, many, sizeof(many), argv) == 0 && argv[HOOK_ARGS_MAX - 1] &&
	       !argv[HOOK_ARGS_MAX], "HOOK_ARGS_MAX words fit");
}

int main(void)
{
	if (!mkdtemp(dir) || prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) {
		perror("setup");
		return 1;
	}
	test_split();
	test_output();
	test_daemon();
	test_signal();
	test_missing();
	test_bounded();
	test_timeout();
	tap_rmtree(dir);
	return tap_done();
}
