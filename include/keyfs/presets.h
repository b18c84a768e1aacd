/* Presets: the well-known places of keys on a server, as data. The
 * catalog is every *.ini file of a directory (presets.dir, by default
 * PREFIX/share/keyfs/presets, where conf/presets/presets.ini is
 * installed), read in name order; a [preset NAME] section holds the keys
 * of a [keyset] section (path, include, exclude, on_activate, or
 * backup_command and the other command keys, whose commands may name
 * their target, a device or directory, as @TARGET@) and these of its own:
 *   description  one line, for people;
 *   keys         globs below path (or below target) naming the private
 *                key files (default: include): what keyfsctl discover
 *                counts, so that a public certificate alone is no key
 *                location;
 *   devices      a command printing device paths, one a line: one keyset
 *                per device, the target of its commands.
 * A section of a later file replaces one of the same name, so a site
 * changes a shipped preset by a file of its own.
 *
 * A [keyset NAME] section with "preset = P" takes every key of P it does
 * not set itself (config_presets(), which config_load() calls), the
 * target too: a preset of devices leaves it to the section. */
#ifndef KEYFS_PRESETS_H
#define KEYFS_PRESETS_H

#include <stddef.h>

#include "keyfs/config.h"

#define PRESETS_MAX 1024

struct preset {
	struct config_keyset ks;	/* ks.name is the preset's name */
	char description[256];
	char keys[1024];		/* globs, space-separated; "" for include */
	char devices[1024];		/* argv, space-separated; "" for none */
	int file;			/* which file of the catalog it came from */
	int line;			/* its section's first key there */
};

struct presets {
	struct preset *v;
	size_t n;
	int files;			/* files parsed so far */
};

/* The catalog directory of c: presets.dir, or the built-in one. */
const char *presets_dir(const struct config *c);

/* Parses one catalog file's text into p (name for errors: "name:line:
 * message" in err) and checks the presets it defined: each needs a
 * description and is a live keyset (path and include) or a command
 * keyset; @TARGET@ in its commands needs devices or a target (then with
 * keys), and keys a path or a target. */
int presets_parse(struct presets *p, const char *name, const char *text, char *err,
		  size_t errlen);

/* Every *.ini file of dir, in name order. */
int presets_load(struct presets *p, const char *dir, char *err, size_t errlen);

const struct preset *presets_find(const struct presets *p, const char *name);
void presets_free(struct presets *p);

/* Fills in each key of ks that ks leaves unset from p, then puts
 * ks->target for @TARGET@ in the commands. -EINVAL with *why (static
 * text) for a target missing, not wanted, or too long. */
int preset_apply(const struct preset *p, struct config_keyset *ks, const char **why);

/* The presets of c's [keyset] sections, from the catalog of c; errors
 * as "name:line: keyset K.preset: why" (name: the configuration file). */
int config_presets(struct config *c, const char *name, char *err, size_t errlen);

#endif
