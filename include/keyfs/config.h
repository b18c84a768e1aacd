/* keyfs configuration: defaults, the INI file (inih) and -o options.
 *
 * Every key is one row of one table (config_keys[] in config.c): its
 * INI name, its -o alias, its type and limits, its default and its help.
 * Parsing, range checks, error messages and the defaults all come from
 * that table, so a key cannot be parsed one way and defaulted or
 * described another. Every key has a default, so keyfs runs with no
 * config at all. */
#ifndef KEYFS_CONFIG_H
#define KEYFS_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "keyfs/keyset.h"

#define CONFIG_DEFAULT_STORE "/var/lib/keyfs"
#define CONFIG_KEYSETS_MAX 4096	/* [keyset NAME] sections */

enum policy_kind {
	POLICY_COMPLEX, /* length plus upper, lower, digit and symbol */
	POLICY_LENGTH,	/* length only */
};

/* import.unauthenticated: what a backup nothing vouches for becomes. */
enum unauth_kind {
	UNAUTH_INACTIVE,	/* an inactive version, activated on request */
	UNAUTH_REFUSE,		/* refused */
};

struct config {
	char store[PATH_MAX];
	/* A backend's name, checked by the store (store_backend_check()):
	 * the names live in store_backends.c alone, and the store area sits
	 * above this one. */
	char backend[32];
	char state_dir[PATH_MAX];	/* "" for STORE/.keyfs */
	int work_factor;		/* scrypt logN for sealing */
	size_t seal_memory;		/* bytes all sealing workers may use */
	enum policy_kind policy;
	int min_length;
	size_t import_max_size;		/* per staged file */
	size_t import_max_total;	/* all staged files together */
	int import_max_work_factor;	/* scrypt logN cap for unsealing; 0: work_factor */
	char import_signers[PATH_MAX];	/* allowed_signers file, "" for none */
	int import_unauthenticated;	/* UNAUTH_INACTIVE or UNAUTH_REFUSE */
	bool allow_other;
	char agent[PATH_MAX];		/* keyfs-agent socket, "" for none */
	char password_file[PATH_MAX];	/* "" for none */
	char password_credential[256];	/* systemd credential name, "" for none */
	char metrics_file[PATH_MAX];	/* Prometheus textfile to keep, "" for none */
	bool metrics_per_keyset;	/* per-keyset series in the metrics */
	char recipients[PATH_MAX];	/* age -R file sealing exports, "" for none */
	char identity_file[PATH_MAX];	/* identities for import/verify, "" for none */
	char identity_credential[256];	/* systemd credential of identities, "" for none */
	char presets_dir[PATH_MAX];	/* the preset catalog, "" for the built-in one */
	struct config_keyset *keysets;	/* [keyset NAME] sections, in file order */
	size_t nkeysets;
};

/* A [keyset NAME] section: settings of one keyset (config_keyset_keys[]). */
struct config_keyset {
	char name[KEYSET_NAME_MAX + 1];
	char recipients[PATH_MAX];	/* its own seal.recipients, "" for none */
	/* A preset of the catalog (presets.h) fills in the keys this
	 * section leaves unset, once config_presets() ran; target is what
	 * its commands name as @TARGET@ (a LUKS volume). */
	char preset[KEYSET_NAME_MAX + 1];
	char target[PATH_MAX];
	int preset_line;		/* line of "preset =", for errors */
	/* A live keyset (store_live.h): the files below path that match a
	 * pattern of include and none of exclude; "" for a keyset of the
	 * store. */
	char path[PATH_MAX];
	char include[1024];		/* globs, space-separated */
	char exclude[1024];
	char on_activate[1024];		/* argv, space-separated; "" for none */
	/* What a restore may set (store_policy.h): member globs that keep
	 * their execute bits, and security.* xattr names beyond user.*. */
	char executable[1024];
	char xattrs[1024];
	size_t max_file_size;		/* 0: KEYSET_FILE_MAX */
	/* A command keyset (store_command.h): the members are what
	 * backup_command leaves in its directory, and its stdout as the
	 * member backup_stdout; "" for none. */
	char backup_command[1024];	/* argv, space-separated */
	char backup_stdout[256];
	char restore_command[1024];
	char user[64];			/* "": root */
	char env[1024];			/* K=V, space-separated */
	int refresh;			/* seconds; 0: CONFIG_REFRESH_DEFAULT */
	int timeout;			/* seconds; 0: CONFIG_TIMEOUT_DEFAULT */
};

#define CONFIG_REFRESH_DEFAULT 3600
#define CONFIG_TIMEOUT_DEFAULT 60

/* How a key's value is read and checked. */
enum config_type {
	CONFIG_TEXT,	/* any text, not empty, shorter than the field */
	CONFIG_PATH,	/* an absolute path, shorter than the field */
	CONFIG_NAME,	/* a plain file name (no '/', not "." or ".."), as in LoadCredential= */
	CONFIG_INT,	/* a decimal int from min to max */
	CONFIG_SIZE,	/* a decimal number of bytes (size_t) from min to max */
	CONFIG_BOOL,	/* yes/true/1 or no/false/0 */
	CONFIG_CHOICE,	/* one of choices[]; stored as its index, in an int-sized field */
};

struct config_key {
	const char *name;		/* "section.key", as in the INI file */
	const char *alias;		/* the -o name, or NULL */
	enum config_type type;
	long long min, max;		/* CONFIG_INT, CONFIG_SIZE: inclusive */
	const char *const *choices;	/* CONFIG_CHOICE: NULL-terminated */
	const char *def;		/* the default as written in the INI file;
					 * NULL: none (the field stays zero) */
	size_t offset, size;		/* the field in struct config; size 0:
					 * checked, stored nowhere */
	const char *help;		/* one line */
};

/* Every key, in the order of the example file; ends with a NULL name. */
extern const struct config_key config_keys[];
/* The keys of a [keyset NAME] section, as "keyset.KEY" (the section
 * named without its keyset); offsets into struct config_keyset. */
extern const struct config_key config_keyset_keys[];

/* The row of a key, by "section.key" or by its -o alias; NULL if none. */
const struct config_key *config_key_find(const char *name);

/* The row a keyfs -o option names: opt is "alias=value" with the alias
 * of a row; NULL for any other option (libfuse's). */
const struct config_key *config_option(const char *opt);

/* The -o options, one line per row with an alias, in table order: the
 * alias, a placeholder for the value from the row's type, its help and
 * its limits, choices and default, all from the row. For --help. */
void config_usage(FILE *f);

/* Every field zero, then every key with a default set to it. */
void config_defaults(struct config *c);

/* Set one key, named "section.key" as in the INI file or by its -o alias
 * ("store", "work_factor"), or a keyset's as "keyset NAME.key" (its
 * section, "[keyset NAME]", with the key). -ENOENT for an unknown key, -EINVAL for a bad
 * value, and *c is then unchanged; *why says what is wrong, never quoting
 * the value (it may be a mistyped secret). *why stays valid until the
 * next config_set() in the same thread. */
int config_set(struct config *c, const char *key, const char *value, const char **why);

/* Set key ("path", as in a [keyset] section) of ks alone, checked as
 * config_set() checks it; for sections kept elsewhere (presets.h). */
int config_keyset_set(struct config_keyset *ks, const char *key, const char *value,
		      const char **why);

/* Frees the [keyset] sections; *c is then as config_defaults() left it
 * but for the keys set. */
void config_free(struct config *c);

/* The [keyset NAME] section of name, or NULL. */
const struct config_keyset *config_keyset(const struct config *c, const char *name);

/* Parse an INI buffer; on error writes "name:line: message" into err. */
int config_parse(struct config *c, const char *name, const char *text, char *err, size_t errlen);
/* Read and parse a file (bounded size). The keysets' presets are the
 * caller's next step (config_presets(), presets.h), before any check. */
int config_load(struct config *c, const char *path, char *err, size_t errlen);

/* Cross-field checks after everything is set; *why is static text. */
int config_check(const struct config *c, const char **why);

/* The highest scrypt work factor an imported file may claim:
 * import.max_work_factor, by default the sealing work factor. */
int config_import_max_work_factor(const struct config *c);

/* The name of the keystore backend chosen, as given (store_open()). */
const char *config_backend(const struct config *c);

#endif
