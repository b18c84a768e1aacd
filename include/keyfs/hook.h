/* Running a keyset's on_activate command after keys were installed:
 * split on spaces into argv (no shell), stdin /dev/null, stdout and
 * stderr captured, killed (its whole process group) past a timeout. */
#ifndef KEYFS_HOOK_H
#define KEYFS_HOOK_H

#include <stdbool.h>
#include <time.h>

#define HOOK_TIMEOUT 60		/* seconds */
#define HOOK_ARGS_MAX 64
#define HOOK_OUTPUT_MAX 1024	/* bytes of output kept */

struct hook_result {
	time_t when;		/* 0: never ran */
	int status;		/* exit status, 128 + signal, or -errno if it could not start */
	bool timed_out;
	char output[HOOK_OUTPUT_MAX + 1]; /* its start, NUL-terminated */
};

/* Runs cmd and waits for it (at most timeout seconds, then SIGKILL).
 * Returns 0 if it exited 0, else -ECHILD (res says how it ended), or
 * -E2BIG / -ENOMEM / a spawn error. */
int hook_run(const char *cmd, int timeout, struct hook_result *res);

/* One line: "exited 0 at 2024-..Z: output..." (output's newlines as
 * "; "). */
void hook_describe(const struct hook_result *res, char *buf, size_t size);

#endif
