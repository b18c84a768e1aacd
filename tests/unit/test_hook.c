/* Unit test for hook.c: the wait is for the command's own process (a
 * daemon it leaves holding the output pipe does not hold hook_run()),
 * its exit status or signal is kept, a missing program is told apart
 * from a failing one, output is bounded, and a timeout kills the
 * command's whole process group. hook_run_in(): a working directory,
 * another user (its ids, its files, the kill at the timeout still
 * working), a clean environment and its PATH, stdout apart from stderr,
 * the output's tail, and no descriptor of ours left open in the command.
 *
 * hook_run() runs no shell, so each case is a small script in a
 * private directory. This process is a child subreaper: what a script
 * leaves behind becomes our child, so the test can wait for it and see
 * how it ended. It runs as root (to become nobody) and, like the
 * daemon, ignores SIGPIPE, blocks SIGTERM and runs threads: none of it
 * may reach a command. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keyfs/hook.h"

#include "tap.h"

#define NOBODY 65534

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

/* dir/name (static). */
static const char *at(const char *name)
{
	static char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

/* A directory dir/name, mode, owned by uid; open, or exits. */
static int subdir(const char *name, mode_t mode, uid_t uid)
{
	int fd;

	if (mkdir(at(name), mode) || chown(at(name), uid, uid) || chmod(at(name), mode) ||
	    (fd = open(at(name), O_RDONLY | O_DIRECTORY)) < 0) {
		perror(name);
		exit(1);
	}
	return fd;
}

/* An empty file dir/name to take a command's stdout; open, without
 * FD_CLOEXEC as a careless caller's might be, or exits. */
static int out_file(const char *name)
{
	int fd = open(at(name), O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0) {
		perror(name);
		exit(1);
	}
	return fd;
}

/* What fd holds, NUL-terminated into buf; then empties it for the
 * next command. */
static const char *contents(int fd, char *buf, size_t size)
{
	ssize_t n = pread(fd, buf, size - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	if (ftruncate(fd, 0) || lseek(fd, 0, SEEK_SET))
		perror("ftruncate");
	return buf;
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

static void test_dir(void)
{
	const struct hook_spec spec = { .dirfd = subdir("cwd", 0700, 0), .out_fd = -1 };
	struct hook_result res;
	char want[300];
	struct stat st;
	int ret;

	ret = hook_run_in(script("make", "pwd; echo made >made"), 5, &spec, &res);
	TAP_EQ_INT(ret, 0, "run in a directory: 0");
	tap_ok(stat(at("cwd/made"), &st) == 0 && st.st_uid == 0,
	       "the file it made with a relative name is there");
	snprintf(want, sizeof(want), "%s\n", at("cwd"));
	tap_ok(!strcmp(res.output, want), "its working directory: '%s'", res.output);
	close(spec.dirfd);
}

static void test_user(void)
{
	struct hook_spec spec = { .dirfd = subdir("nobody", 0700, NOBODY), .user = "nobody",
				  .out_fd = out_file("id.out") };
	struct hook_result res;
	struct stat st = { .st_uid = 0 };
	char buf[256];
	int ret;

	ret = hook_run_in("id -u", 5, &spec, &res);
	tap_ok(ret == 0 && !strcmp(contents(spec.out_fd, buf, sizeof(buf)), "65534\n"),
	       "as nobody: id -u is 65534 (%d, '%s')", ret, buf);
	ret = hook_run_in("id -G", 5, &spec, &res);
	tap_ok(ret == 0 && !strcmp(contents(spec.out_fd, buf, sizeof(buf)), "65534\n"),
	       "nobody's groups only, not root's: '%s'", buf);
	spec.out_fd = -1;
	ret = hook_run_in(script("own", "echo mine >owned"), 5, &spec, &res);
	if (stat(at("nobody/owned"), &st))
		st.st_uid = (uid_t)-1;
	tap_ok(ret == 0 && st.st_uid == NOBODY, "a file it makes is nobody's (%d, uid %d)", ret,
	       (int)st.st_uid);
	close(spec.dirfd);

	/* a directory nobody cannot enter: told by the child before the exec */
	spec.dirfd = subdir("root-only", 0700, 0);
	ret = hook_run_in(script("never", "echo ran >\"$0.ran\""), 5, &spec, &res);
	tap_ok(ret == -EACCES && res.start_error == EACCES && res.status == -EACCES &&
	       access(at("never.ran"), F_OK), "as nobody in a directory it cannot enter: "
	       "-EACCES, not run (%d)", ret);
	close(spec.dirfd);

	spec = (struct hook_spec){ .dirfd = -1, .user = "keyfs-no-such-user", .out_fd = -1 };
	ret = hook_run_in(script("unknown", "echo ran >\"$0.ran\""), 5, &spec, &res);
	tap_ok(ret == -ESRCH && res.start_error == ESRCH && res.status == -ESRCH &&
	       res.exit_code == -1 && res.when != 0, "an unknown user: -ESRCH (%d)", ret);
	tap_ok(access(at("unknown.ran"), F_OK) && errno == ENOENT, "and nothing run");

	spec.user = "root";
	ret = hook_run_in("id -u", 5, &spec, &res);
	tap_ok(ret == 0 && !strcmp(res.output, "0\n"), "user root: keyfs' own ('%s')", res.output);
}

static void test_env(void)
{
	static char foo[] = "FOO=bar baz", foo_only[] = "FOO=bar", none[] = "PATH=/nonexistent";
	char path[300], twice[600], *envp[] = { path, foo, NULL };
	char *bare[] = { foo_only, NULL }, *both[] = { none, twice, NULL };
	struct hook_spec spec = { .dirfd = -1, .envp = envp, .out_fd = -1 };
	struct hook_result res;
	int ret;

	subdir("bin", 0755, 0);
	snprintf(path, sizeof(path), "PATH=%s:/usr/bin:/bin", at("bin"));
	script("bin/keyfs-test-prog", "echo found");
	ret = hook_run_in("keyfs-test-prog", 5, &spec, &res);
	tap_ok(ret == 0 && !strcmp(res.output, "found\n"),
	       "found in its environment's PATH (%d, '%s')", ret, res.output);
	ret = hook_run_in("env", 5, &spec, &res);
	snprintf(twice, sizeof(twice), "%s\nFOO=bar baz\n", path);
	tap_ok(ret == 0 && !strcmp(res.output, twice), "only its environment: '%s'", res.output);

	spec.envp = bare;
	ret = hook_run_in("env", 5, &spec, &res);
	tap_ok(ret == 0 && !strcmp(res.output, "FOO=bar\n"),
	       "no PATH: env found in the default one, and sees only FOO ('%s')", res.output);
	ret = hook_run_in("keyfs-test-prog", 5, &spec, &res);
	tap_ok(ret == -ENOENT && res.start_error == ENOENT,
	       "not in the default PATH: -ENOENT (%d)", ret);
	ret = hook_run_in("keyfs-no-such-program", 5, &spec, &res);
	tap_ok(ret == -ENOENT && res.start_error == ENOENT, "missing program: -ENOENT (%d)", ret);

	/* keyfs' own PATH is not the command's */
	setenv("PATH", at("bin"), 1);
	ret = hook_run_in("keyfs-test-prog", 5, &spec, &res);
	tap_ok(ret == -ENOENT, "keyfs' PATH not used with a clean environment (%d)", ret);
	ret = hook_run("keyfs-test-prog", 5, &res);
	tap_ok(ret == 0 && !strcmp(res.output, "found\n"), "hook_run() uses it (%d)", ret);
	setenv("PATH", "/usr/bin:/bin", 1);

	snprintf(twice, sizeof(twice), "PATH=/usr/bin:/bin:%s", at("bin"));
	spec.envp = both;
	ret = hook_run_in("keyfs-test-prog", 5, &spec, &res);
	tap_ok(ret == 0, "two PATHs: the last one counts (%d)", ret);

	/* there but not executable: EACCES, as execvp() says */
	if (chmod(script("bin/keyfs-test-noexec", "echo ran"), 0644))
		perror("chmod");
	ret = hook_run_in("keyfs-test-noexec", 5, &spec, &res);
	tap_ok(ret == -EACCES && res.start_error == EACCES, "not executable: -EACCES (%d)", ret);
}

static void test_out_fd(void)
{
	const struct hook_spec spec = { .dirfd = subdir("fds.d", 0755, 0),
					.out_fd = out_file("o") };
	struct hook_result res;
	char body[256], buf[256];
	int ret;

	ret = hook_run_in(script("split", "echo out; echo err >&2"), 5, &spec, &res);
	tap_ok(ret == 0 && !strcmp(contents(spec.out_fd, buf, sizeof(buf)), "out\n"),
	       "stdout into out_fd: '%s'", buf);
	tap_ok(!strcmp(res.output, "err\n"), "stderr alone in output: '%s'", res.output);

	/* neither dirfd nor out_fd (both without FD_CLOEXEC) under its own
	 * number in the command */
	snprintf(body, sizeof(body), "for fd in %d %d; do [ -e /proc/$$/fd/$fd ] && "
		 "echo \"fd $fd open\"; done; echo checked", spec.dirfd, spec.out_fd);
	ret = hook_run_in(script("fds", body), 5, &spec, &res);
	tap_ok(ret == 0 && !strcmp(contents(spec.out_fd, buf, sizeof(buf)), "checked\n"),
	       "no dirfd or out_fd left in the command: '%s'", buf);
	close(spec.dirfd);
	close(spec.out_fd);
}

static void test_tail(void)
{
	struct hook_spec spec = { .dirfd = -1, .out_fd = out_file("tail.out"), .tail = true };
	struct hook_result res;
	char buf[64];
	int ret;

	ret = hook_run_in(script("tail", "echo to-stdout\n"
				 "head -c 1048576 /dev/zero | tr '\\0' x >&2\necho END >&2"),
			  10, &spec, &res);
	TAP_EQ_INT(ret, 0, "1 MB of stderr, tail kept: 0");
	tap_ok(res.output_len == HOOK_OUTPUT_MAX && res.output_cut &&
	       strlen(res.output) == HOOK_OUTPUT_MAX && res.output[0] == 'x' &&
	       !strcmp(res.output + HOOK_OUTPUT_MAX - 5, "xEND\n"),
	       "its last %d bytes kept, marked cut: '...%s'", HOOK_OUTPUT_MAX,
	       res.output + HOOK_OUTPUT_MAX - 8);
	tap_ok(!strcmp(contents(spec.out_fd, buf, sizeof(buf)), "to-stdout\n"),
	       "stdout apart: '%s'", buf);
	close(spec.out_fd);
	spec.out_fd = -1;
	ret = hook_run_in(script("short", "echo one; echo two >&2"), 5, &spec, &res);
	tap_ok(ret == 0 && !strcmp(res.output, "one\ntwo\n") && !res.output_cut,
	       "short output whole with tail: '%s'", res.output);
	ret = hook_run_in("yes", 20, &spec, &res);
	tap_ok(ret == -ECHILD && res.term_signal == SIGPIPE && res.output_cut &&
	       res.output_len == HOOK_OUTPUT_MAX && !strncmp(res.output, "y\ny\n", 4),
	       "endless output with tail: bounded, SIGPIPE (signal %d)", res.term_signal);
}

/* As test_timeout(), as nobody. */
static void test_timeout_user(void)
{
	const struct hook_spec spec = { .dirfd = open(at("nobody"), O_RDONLY | O_DIRECTORY),
					.user = "nobody", .out_fd = -1 };
	struct hook_result res;
	int ret, st;
	double t;
	pid_t pid;

	t = now();
	ret = hook_run_in(script("slow-nobody", "sleep 100 &\necho $! >slow.pid\necho waiting\n"
				 "sleep 100"), 1, &spec, &res);
	t = now() - t;
	tap_ok(ret == -ECHILD && res.timed_out && res.term_signal == SIGKILL && t < 3,
	       "as nobody, killed at the timeout (%.2f s, signal %d)", t, res.term_signal);
	tap_ok(!strcmp(res.output, "waiting\n"), "output before the kill kept: '%s'", res.output);
	pid = read_pid("nobody/slow.pid");
	st = pid > 0 ? reap(pid) : -1;
	tap_ok(st == -1 ? pid > 0 && errno == ECHILD && kill(pid, 0) && errno == ESRCH
			: WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	       "what it started as nobody is killed too");
	close(spec.dirfd);
}

/* Commands started from several threads at once, as the daemon's
 * activations and command keysets may be: each as nobody, each told its
 * own output. */
#define THREADS 4
#define RUNS 10

static void *run_many(void *arg)
{
	const struct hook_spec spec = { .dirfd = -1, .user = "nobody", .out_fd = -1 };
	struct hook_result res;
	long ok = 0;
	int i;

	(void)arg;
	for (i = 0; i < RUNS; i++) {
		free(malloc(4096));
		ok += hook_run_in("id -u", 5, &spec, &res) == 0 && !strcmp(res.output, "65534\n");
	}
	return (void *)ok;
}

static void test_threads(void)
{
	pthread_t t[THREADS];
	long ok = 0;
	void *r;
	int i, n = 0;

	for (i = 0; i < THREADS; i++)
		n += pthread_create(&t[n], NULL, run_many, NULL) == 0;
	for (i = 0; i < n; i++) {
		pthread_join(t[i], &r);
		ok += (long)r;
	}
	tap_ok(n == THREADS && ok == THREADS * RUNS, "%ld of %d runs from %d threads right", ok,
	       THREADS * RUNS, n);
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
	sigset_t term;

	/* nobody runs scripts in it */
	if (!mkdtemp(dir) || chmod(dir, 0755) || prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) {
		perror("setup");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);
	test_split();
	test_output();
	test_daemon();
	test_signal();
	test_missing();
	test_bounded();
	test_timeout();
	test_dir();
	test_user();
	test_env();
	test_out_fd();
	test_tail();
	test_timeout_user();
	test_threads();
	tap_rmtree(dir);
	return tap_done();
}
