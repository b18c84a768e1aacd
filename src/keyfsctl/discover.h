/* keyfsctl discover: the key locations of the preset catalog (presets.h)
 * that exist on this host, and whether a configured keyset covers each.
 * Read-only; needs no mount.
 *
 * A live preset's location is found when a regular file below its path
 * is a member (include, not exclude) and a key file (keys, by default
 * include); a configured live keyset covers it when every such key file
 * lies below the keyset's path and is one of its members. A command
 * preset's target directory is found when a file below it matches keys.
 * A preset of devices finds one location per device its command lists
 * (or, for tests, the file $KEYFS_DISCOVER_<NAME>_DEVICES:
 * KEYFS_DISCOVER_LUKS_DEVICES for the luks preset). A command keyset
 * covers a target or device when a word of its backup_command is that
 * file (links resolved). */
#ifndef KEYFS_DISCOVER_H
#define KEYFS_DISCOVER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "keyfs/config.h"
#include "keyfs/presets.h"

#include "check.h"

#define DISCOVER_CONFIG_DEFAULT "/etc/keyfs/keyfs.ini"

struct location {
	const struct preset *preset;
	char path[PATH_MAX];		/* on this host: under the root, or the device */
	bool target;			/* a command preset's target: a device or directory */
	size_t keys;			/* key files found */
	size_t uncovered;		/* of them, those no keyset covers */
	char covered_by[256];		/* the keysets covering it, ", "-separated */
};

struct discovery {
	char root[PATH_MAX];		/* realpath of the root; "" for / */
	struct config cfg;
	struct presets cat;
	struct location *v;
	size_t n;
	size_t uncovered;		/* locations not wholly covered */
};

/* Reads the configuration (config, or DISCOVER_CONFIG_DEFAULT when NULL,
 * which may be missing) and its catalog, and looks for every location
 * under root (NULL or "" for /). -errno with the reason in err: trouble. */
int discover_run(struct discovery *d, const char *root, const char *config, char *err,
		 size_t errlen);
void discover_free(struct discovery *d);

/* A location's path as shown: without the root. */
const char *discover_shown(const struct discovery *d, const struct location *l);

/* keyfsctl discover: argv[0] is "discover"; returns the exit status. */
int discover_main(int argc, char **argv);

/* keyfsctl check --discover: adds the findings to the check's verdict s
 * and its output line out (size bytes, "KEYFS STATE - text | perfdata\n"):
 * WARNING and the paths for locations not covered, UNKNOWN for trouble. */
enum check_status discover_check(const char *root, const char *config, enum check_status s,
				 char *out, size_t size);

#endif
