/* keyfs configuration: defaults, the INI file (inih) and -o options.
 * Every key has a default, so keyfs runs with no config at all. */
#ifndef KEYFS_CONFIG_H
#define KEYFS_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#define CONFIG_DEFAULT_STORE "/var/lib/keyfs"

enum policy_kind {
	POLICY_COMPLEX, /* length plus upper, lower, digit and symbol */
	POLICY_LENGTH,	/* length only */
};

struct config {
	char store[PATH_MAX];
	int work_factor;		/* scrypt logN for sealing */
	size_t seal_memory;		/* bytes all sealing workers may use */
	enum policy_kind policy;
	int min_length;
	size_t import_max_size;		/* per staged file */
	size_t import_max_total;	/* all staged files together */
	int import_max_work_factor;	/* scrypt logN cap for unsealing; 0: work_factor */
	bool allow_other;
	char agent[PATH_MAX];		/* keyfs-agent socket, "" for none */
	char password_file[PATH_MAX];	/* "" for none */
	char password_credential[256];	/* systemd credential name, "" for none */
};

void config_defaults(struct config *c);

/* Set one key, named "section.key" as in the INI file or by its -o alias
 * ("store", "work_factor"). -ENOENT for an unknown key, -EINVAL for a bad
 * value; *why then says what is wrong (static text). */
int config_set(struct config *c, const char *key, const char *value, const char **why);

/* Parse an INI buffer; on error writes "name:line: message" into err. */
int config_parse(struct config *c, const char *name, const char *text, char *err, size_t errlen);
/* Read and parse a file (bounded size). */
int config_load(struct config *c, const char *path, char *err, size_t errlen);

/* Cross-field checks after everything is set. */
int config_check(const struct config *c, const char **why);

/* The highest scrypt work factor an imported file may claim:
 * import.max_work_factor, by default the sealing work factor. */
int config_import_max_work_factor(const struct config *c);

#endif
