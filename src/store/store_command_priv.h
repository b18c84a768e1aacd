/* The command layer's state, shared by store_command.c (the store
 * operations, the refresh thread) and store_command_report.c (what
 * status and metrics show). */
#ifndef KEYFS_STORE_COMMAND_PRIV_H
#define KEYFS_STORE_COMMAND_PRIV_H

#include <pthread.h>
#include <stdbool.h>

#include "keyfs/config.h"
#include "keyfs/hook.h"
#include "keyfs/store.h"

#include "command_run.h"

struct cmd_keyset {
	struct config_keyset cfg;
	/* One run of its programs at a time (refresh, activate, a put
	 * comparing with the members); never taken under the store's lock. */
	pthread_mutex_t run_lock;
	/* protected by the store's lock: */
	int error;			/* 0, or why stamp() and read() fail */
	char why[COMMAND_WHY_MAX];	/* its words */
	struct hook_result last;	/* the last backup_command */
	struct hook_result restore;	/* the last restore_command */
	char restore_why[COMMAND_WHY_MAX];
	long long next;			/* CLOCK_MONOTONIC second of the next run */
};

struct command_store {
	struct store inner;
	int sfd;			/* keyfs' state directory (borrowed) */
	int tmpfd;			/* its tmp/, for the programs' stdout */
	struct cmd_keyset *k;
	size_t n;
	pthread_mutex_t lock;
	pthread_cond_t wake;		/* the refresh thread: stop */
	pthread_t thread;
	bool running, stop;
	void (*changed)(void *arg, const char *name);
	void *changed_arg;
};

/* s's command layer (s itself, or the store the live layer wraps), or
 * NULL. */
struct command_store *store_command_of(const struct store *s);
/* Below the state directory: commands/NAME/ the last good members,
 * commands/NAME.failed the words of a failed run. */
#define DIR_COMMANDS "commands"

/* store_command_members.c: */
/* The members' directory as served: -ENODATA while the last run failed
 * or none ran yet. */
int cmd_open_served(struct command_store *cs, const struct cmd_keyset *k);
/* The members as served (-ENODATA as above, why in k->why). */
int cmd_members_read(struct command_store *cs, struct cmd_keyset *k, struct keyset *ks);
/* The last good members, whatever the last run gave: -ENODATA if none. */
int cmd_members_read_any(struct command_store *cs, const struct cmd_keyset *k, struct keyset *ks);
/* At start: a failure recorded before, or no members yet, is k's error. */
void cmd_failure_load(struct command_store *cs, struct cmd_keyset *k);
/* Runs k's backup_command and takes its members when they changed;
 * tells cs->changed when the members or the trouble changed. Takes
 * k->run_lock. */
int cmd_refresh(struct command_store *cs, struct cmd_keyset *k);
/* CLOCK_MONOTONIC seconds, for cmd_keyset.next. */
long long cmd_now(void);

#endif
