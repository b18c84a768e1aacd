/* `keyfsctl restore [--dry-run|--activate] FILE|DIR...`: a whole
 * backup (a directory restic, borg or rsync brought back) restored
 * through a mounted keyfs. Every file is verified first and the plan
 * printed, one line per file; then each is imported, and with
 * --activate the versions that differ are installed. */
#ifndef KEYFS_RESTORE_H
#define KEYFS_RESTORE_H

#include <stdbool.h>

/* Asks keyfs to activate version of keyset; 0 or -errno, reported by the
 * callee. */
typedef int restore_activate_fn(void *arg, const char *keyset, unsigned version,
				bool unauthenticated);

/* argv[0] is "restore"; returns the exit status: 0 every file restored
 * or identical, 1 some refused (each named), 2 usage or trouble. */
int restore_main(const char *mount, int argc, char **argv, restore_activate_fn *activate,
		 void *arg);

#endif
