/* Running a command keyset's programs (store_command.h): backup_command
 * in a fresh private directory whose regular files (and its stdout as
 * backup_stdout) become the members, restore_command in one holding a
 * version's members. Each runs as the keyset's user, with a clean
 * environment, stdin /dev/null, stderr kept (its tail) for the report,
 * killed with its process group at the timeout (hook.h). */
#ifndef KEYFS_COMMAND_RUN_H
#define KEYFS_COMMAND_RUN_H

#include <stddef.h>

#include "keyfs/config.h"
#include "keyfs/hook.h"
#include "keyfs/keyset.h"

/* Words for a failure: the program's exit, its stderr's tail. */
#define COMMAND_WHY_MAX (HOOK_OUTPUT_MAX * 4 + 256)

/* Is c's user one this host has, its env well formed? 0, or -EINVAL
 * with *why set (static text). */
int command_check(const struct config_keyset *c, const char **why);

/* Runs backup_command; ks (empty) gets the members, named c->name,
 * each 0600 with mtime now. tmpfd is a directory of keyfs' own (its
 * stdout is kept there, unlinked, while it runs). res says how it
 * ended. 0; -ECHILD (it failed, timed out), a start error, -ENODATA
 * (it wrote nothing), -EFBIG / -E2BIG (over the keyset's limits): why
 * says which in words. Files that are no member (a directory, a link,
 * a name a keyset cannot hold) are logged and left out. */
int command_backup(const struct config_keyset *c, int tmpfd, struct keyset *ks,
		   struct hook_result *res, char *why, size_t size);

/* Runs restore_command over ks' members; 0 if it exited 0, else as
 * command_backup(). */
int command_restore(const struct config_keyset *c, const struct keyset *ks,
		    struct hook_result *res, char *why, size_t size);

#endif
