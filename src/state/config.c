/* The keyfs configuration, from one table of keys. A row names a key, its
 * -o alias, its type, limits and default, and the field it sets; the
 * parser, the range checks, the error messages and config_defaults() all
 * read the rows, so adding a key is adding a row (and documenting it in
 * keyfs.ini(5) and conf/keyfs.ini, which a unit test checks). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keyfs/age.h"
#include "keyfs/config.h"
#include "keyfs/keyset.h"

#include "inifile.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/* A field of struct config that must be sizeof(t) bytes wide: a row
 * cannot name a field of the wrong width (a negative array size stops
 * the build). */
#define FIELD_AS(m, t)                                                                 \
	.offset = offsetof(struct config, m) +                                         \
		  0 * sizeof(char[sizeof(((struct config *)0)->m) == sizeof(t) ? 1 : -1]), \
	.size = sizeof(t)
/* A char array field of struct s: its size bounds the text. */
#define FIELD_TEXT_OF(s, m)                                                            \
	.offset = offsetof(struct s, m) +                                              \
		  0 * sizeof(char[sizeof(((struct s *)0)->m[0]) == 1 ? 1 : -1]),       \
	.size = sizeof(((struct s *)0)->m)
#define FIELD_TEXT(m) FIELD_TEXT_OF(config, m)

/* Indexed by enum policy_kind: the stored index is the enum value. */
static const char *const unauths[] = {
	[UNAUTH_INACTIVE] = "inactive",
	[UNAUTH_REFUSE] = "refuse",
	NULL,
};

static const char *const policies[] = {
	[POLICY_COMPLEX] = "complex",
	[POLICY_LENGTH] = "length",
	NULL,
};

const struct config_key config_keys[] = {
	{ "store.path", "store", CONFIG_TEXT, .def = CONFIG_DEFAULT_STORE, FIELD_TEXT(store),
	  .help = "the directory keystore: DIR/<keyset>/ holds each keyset, DIR/.keyfs/ keyfs' state" },
	/* Text, not a choice: the backends are the store's to name
	 * (store_backends.c), and it refuses an unknown one at start. */
	{ "store.backend", NULL, CONFIG_TEXT, .def = "dir", FIELD_TEXT(backend),
	  .help = "the keystore backend (store_backends.c names them)" },
	{ "state.dir", "state_dir", CONFIG_PATH, FIELD_TEXT(state_dir),
	  .help = "keyfs' own state (seal cache, verifiers, hints, versions); default STORE/.keyfs" },
	{ "seal.work_factor", "work_factor", CONFIG_INT, AGE_LOGN_MIN, AGE_LOGN_MAX,
	  .def = STR(AGE_LOGN_DEFAULT), FIELD_AS(work_factor, int),
	  .help = "scrypt work factor (log2 N) for sealing exports" },
	{ "seal.memory", NULL, CONFIG_SIZE, 1LL << 20, 1LL << 40, .def = "1073741824",
	  FIELD_AS(seal_memory, size_t),
	  .help = "memory all background sealing workers may use together, in bytes" },
	{ "seal.recipients", "recipients", CONFIG_PATH, FIELD_TEXT(recipients),
	  .help = "seal exports to the public keys in this file (age -R format) instead of a password" },
	{ "password.policy", NULL, CONFIG_CHOICE, .choices = policies, .def = "complex",
	  FIELD_AS(policy, int),
	  .help = "complex: upper case, lower case, digit and symbol; length: length only" },
	{ "password.min_length", NULL, CONFIG_INT, 8, 128, .def = "8", FIELD_AS(min_length, int),
	  .help = "minimum length of the backup password, in characters" },
	{ "password.file", "password_file", CONFIG_PATH, FIELD_TEXT(password_file),
	  .help = "a file holding the backup password, read at start and on SIGHUP" },
	{ "password.credential", "password_credential", CONFIG_NAME,
	  FIELD_TEXT(password_credential),
	  .help = "a systemd credential holding the backup password" },
	{ "password.agent", "agent", CONFIG_PATH, FIELD_TEXT(agent),
	  .help = "a keyfs-agent socket, asked when a password is needed" },
	{ "identity.file", "identity_file", CONFIG_PATH, FIELD_TEXT(identity_file),
	  .help = "identities (age or OpenSSH Ed25519 keys) opening imports, read at start and on SIGHUP" },
	{ "identity.credential", "identity_credential", CONFIG_NAME,
	  FIELD_TEXT(identity_credential),
	  .help = "a systemd credential holding identities opening imports" },
	{ "import.max_size", NULL, CONFIG_SIZE, 4096, 1LL << 30, .def = "33554432",
	  FIELD_AS(import_max_size, size_t),
	  .help = "largest file accepted into import/ or verify/, in bytes" },
	{ "import.max_total", NULL, CONFIG_SIZE, 4096, 1LL << 30, .def = "67108864",
	  FIELD_AS(import_max_total, size_t),
	  .help = "all files staged in import/ and verify/ together, in bytes" },
	{ "import.signers", "signers", CONFIG_PATH, FIELD_TEXT(import_signers),
	  .help = "an allowed_signers file (ssh-keygen) of keys trusted to sign backups" },
	{ "import.unauthenticated", NULL, CONFIG_CHOICE, .choices = unauths, .def = "inactive",
	  FIELD_AS(import_unauthenticated, int),
	  .help = "inactive: a backup nothing vouches for becomes an inactive version; refuse" },
	/* No default: unset, it follows seal.work_factor however that was set. */
	{ "import.max_work_factor", NULL, CONFIG_INT, AGE_LOGN_MIN, AGE_LOGN_MAX,
	  FIELD_AS(import_max_work_factor, int),
	  .help = "highest scrypt work factor a file to import or verify may claim" },
	{ "mount.allow_other", NULL, CONFIG_BOOL, .def = "no", FIELD_AS(allow_other, bool),
	  .help = "let users other than the mounting one into the mount" },
	{ "metrics.file", "metrics_file", CONFIG_PATH, FIELD_TEXT(metrics_file),
	  .help = "a Prometheus textfile (node_exporter) kept up to date, replaced atomically" },
	{ "metrics.per_keyset", NULL, CONFIG_BOOL, .def = "yes", FIELD_AS(metrics_per_keyset, bool),
	  .help = "per-keyset series in the metrics (no: totals only, for very many keysets)" },
	{ "presets.dir", NULL, CONFIG_PATH, FIELD_TEXT(presets_dir),
	  .help = "the preset catalog: every *.ini file in this directory "
		  "(default PREFIX/share/keyfs/presets)" },
	{ .name = NULL },
};

const struct config_key config_keyset_keys[] = {
	{ "keyset.recipients", NULL, CONFIG_PATH, FIELD_TEXT_OF(config_keyset, recipients),
	  .help = "seal this keyset to the public keys in this file (age -R format)" },
	{ "keyset.preset", NULL, CONFIG_NAME, FIELD_TEXT_OF(config_keyset, preset),
	  .help = "a preset of the catalog giving the keys this section does not set" },
	{ "keyset.target", NULL, CONFIG_PATH, FIELD_TEXT_OF(config_keyset, target),
	  .help = "the device or directory a preset's commands name as @TARGET@" },
	{ "keyset.path", NULL, CONFIG_PATH, FIELD_TEXT_OF(config_keyset, path),
	  .help = "a live keyset: the key files where they are, below this directory" },
	{ "keyset.include", NULL, CONFIG_TEXT, FIELD_TEXT_OF(config_keyset, include),
	  .help = "its members: globs relative to path, space-separated (** crosses directories)" },
	{ "keyset.exclude", NULL, CONFIG_TEXT, FIELD_TEXT_OF(config_keyset, exclude),
	  .help = "globs of files below path that are not members, though included" },
	{ "keyset.on_activate", NULL, CONFIG_TEXT, FIELD_TEXT_OF(config_keyset, on_activate),
	  .help = "a command run after an activation installed keys (no shell)" },
	{ "keyset.executable", NULL, CONFIG_TEXT, FIELD_TEXT_OF(config_keyset, executable),
	  .help = "globs of members that keep their execute bits (others are restored without)" },
	{ "keyset.xattrs", NULL, CONFIG_TEXT, FIELD_TEXT_OF(config_keyset, xattrs),
	  .help = "security.* xattrs restored besides user.* (e.g. security.selinux); "
		  "never security.capability" },
	{ "keyset.max_file_size", NULL, CONFIG_SIZE, 1, KEYSET_FILE_MAX,
	  .offset = offsetof(struct config_keyset, max_file_size), .size = sizeof(size_t),
	  .help = "largest member file, in bytes (default 20 MiB, a LUKS2 header backup fits)" },
	{ "keyset.backup_command", NULL, CONFIG_TEXT, FIELD_TEXT_OF(config_keyset, backup_command),
	  .help = "a command keyset: the files this command leaves in its directory (no shell)" },
	{ "keyset.backup_stdout", NULL, CONFIG_NAME, FIELD_TEXT_OF(config_keyset, backup_stdout),
	  .help = "the member that backup_command's standard output becomes" },
	{ "keyset.restore_command", NULL, CONFIG_TEXT,
	  FIELD_TEXT_OF(config_keyset, restore_command),
	  .help = "run by activate in a directory holding the version's members (no shell)" },
	{ "keyset.refresh", NULL, CONFIG_INT, 1, 7 * 86400,
	  .offset = offsetof(struct config_keyset, refresh), .size = sizeof(int),
	  .help = "seconds between runs of backup_command (default 3600)" },
	{ "keyset.user", NULL, CONFIG_TEXT, FIELD_TEXT_OF(config_keyset, user),
	  .help = "the user backup_command and restore_command run as (default root)" },
	{ "keyset.timeout", NULL, CONFIG_INT, 1, 86400,
	  .offset = offsetof(struct config_keyset, timeout), .size = sizeof(int),
	  .help = "seconds a command may run before it is killed (default 60)" },
	{ "keyset.env", NULL, CONFIG_TEXT, FIELD_TEXT_OF(config_keyset, env),
	  .help = "the commands' environment besides PATH: K=V, space-separated" },
	{ .name = NULL },
};

const struct config_key *config_key_find(const char *name)
{
	const struct config_key *k;

	for (k = config_keys; k->name; k++)
		if (!strcmp(k->name, name) || (k->alias && !strcmp(k->alias, name)))
			return k;
	return NULL;
}

/* What a refused value of k should have been, from its row alone. The
 * value itself is never quoted: it may be a mistyped secret. Formatted
 * per thread, so concurrent callers cannot overwrite each other's text. */
static const char *refusal(const struct config_key *k)
{
	static __thread char why[192];
	size_t n, i;

	switch (k->type) {
	case CONFIG_TEXT:
		snprintf(why, sizeof(why), "must not be empty or longer than %zu bytes", k->size - 1);
		break;
	case CONFIG_PATH:
		snprintf(why, sizeof(why), "must be an absolute path of at most %zu bytes", k->size - 1);
		break;
	case CONFIG_NAME:
		snprintf(why, sizeof(why),
			 "must be a plain name of at most %zu bytes (no \"/\", not \".\" or \"..\"), "
			 "as in LoadCredential=", k->size - 1);
		break;
	case CONFIG_INT:
		snprintf(why, sizeof(why), "must be a whole number from %lld to %lld", k->min, k->max);
		break;
	case CONFIG_SIZE:
		snprintf(why, sizeof(why), "must be a number of bytes from %lld to %lld", k->min, k->max);
		break;
	case CONFIG_BOOL:
		snprintf(why, sizeof(why), "must be yes or no");
		break;
	case CONFIG_CHOICE:
		n = (size_t)snprintf(why, sizeof(why), "must be");
		for (i = 0; k->choices[i] && n < sizeof(why); i++)
			n += (size_t)snprintf(why + n, sizeof(why) - n, "%s\"%s\"",
					      !i ? " " : k->choices[i + 1] ? ", " : " or ",
					      k->choices[i]);
		break;
	}
	return why;
}

static int parse_number(const char *v, long long lo, long long hi, long long *out)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || end == v || *end || n < lo || n > hi)
		return -EINVAL;
	*out = n;
	return 0;
}

static int parse_bool(const char *v, long long *out)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"))
		*out = 1;
	else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0"))
		*out = 0;
	else
		return -EINVAL;
	return 0;
}

static int parse_choice(const char *v, const char *const *choices, long long *out)
{
	long long i;

	for (i = 0; choices[i]; i++)
		if (!strcmp(v, choices[i])) {
			*out = i;
			return 0;
		}
	return -EINVAL;
}

/* Checks value against row k; numbers, booleans and choices come back in
 * *n, text is taken from value as it is. */
static int parse_value(const struct config_key *k, const char *value, long long *n)
{
	size_t len = strlen(value);

	switch (k->type) {
	case CONFIG_TEXT:
		return *value && len < k->size ? 0 : -EINVAL;
	case CONFIG_PATH:
		return *value == '/' && len < k->size ? 0 : -EINVAL;
	case CONFIG_NAME:
		return *value && !strchr(value, '/') && strcmp(value, ".") && strcmp(value, "..") &&
		       len < k->size ? 0 : -EINVAL;
	case CONFIG_INT:
	case CONFIG_SIZE:
		return parse_number(value, k->min, k->max, n);
	case CONFIG_BOOL:
		return parse_bool(value, n);
	case CONFIG_CHOICE:
		return parse_choice(value, k->choices, n);
	}
	return -EINVAL;
}

/* Stores a checked value; the rows' field widths are checked at build
 * time (FIELD_AS), and memcpy keeps enum fields free of aliasing games. */
static void store_value(void *base, const struct config_key *k, const char *value, long long n)
{
	char *field = (char *)base + k->offset;
	size_t z = (size_t)n;
	bool b = n != 0;
	int i = (int)n;

	if (!k->size)
		return;
	switch (k->type) {
	case CONFIG_TEXT:
	case CONFIG_PATH:
	case CONFIG_NAME:
		memcpy(field, value, strlen(value) + 1);
		break;
	case CONFIG_INT:
	case CONFIG_CHOICE:
		memcpy(field, &i, sizeof(i));
		break;
	case CONFIG_SIZE:
		memcpy(field, &z, sizeof(z));
		break;
	case CONFIG_BOOL:
		memcpy(field, &b, sizeof(b));
		break;
	}
}

static const struct config_key *keyset_key_find(const char *key)
{
	const struct config_key *k;

	for (k = config_keyset_keys; k->name; k++)
		if (!strcmp(k->name + strlen("keyset."), key))
			return k;
	return NULL;
}

/* The section of keyset name, added if new. */
static struct config_keyset *keyset_section(struct config *c, const char *name)
{
	struct config_keyset *ks;

	ks = (struct config_keyset *)config_keyset(c, name);
	if (ks || c->nkeysets == CONFIG_KEYSETS_MAX)
		return ks;
	ks = realloc(c->keysets, (c->nkeysets + 1) * sizeof(*ks));
	if (!ks)
		return NULL;
	c->keysets = ks;
	ks += c->nkeysets++;
	memset(ks, 0, sizeof(*ks));
	strcpy(ks->name, name);
	return ks;
}

/* Checks value against row k (NULL: an unknown key) and stores it in
 * base, the struct the row's offsets are of. */
static int set_row(void *base, const struct config_key *k, const char *value, const char **why)
{
	long long n = 0;

	if (!k) {
		*why = "unknown key";
		return -ENOENT;
	}
	if (parse_value(k, value, &n)) {
		*why = refusal(k);
		return -EINVAL;
	}
	store_value(base, k, value, n);
	return 0;
}

int config_keyset_set(struct config_keyset *ks, const char *key, const char *value,
		      const char **why)
{
	return set_row(ks, keyset_key_find(key), value, why);
}

/* "keyset NAME.key": the name may hold dots, the key does not. */
static int keyset_set(struct config *c, const char *key, const char *value, const char **why)
{
	const char *dot = strrchr(key, '.'), *name = key + strlen("keyset ");
	char kname[KEYSET_NAME_MAX + 1];
	const struct config_key *k;
	struct config_keyset *ks;
	long long n = 0;

	k = dot ? keyset_key_find(dot + 1) : NULL;
	if (!k) {
		*why = "unknown key";
		return -ENOENT;
	}
	if (dot > name && (size_t)(dot - name) < sizeof(kname)) {
		memcpy(kname, name, (size_t)(dot - name));
		kname[dot - name] = '\0';
	} else {
		kname[0] = '\0';
	}
	if (!keyset_name_valid(kname)) {
		*why = "not a keyset name ([A-Za-z0-9._-], up to 64, not starting with \".\")";
		return -EINVAL;
	}
	if (parse_value(k, value, &n)) {
		*why = refusal(k);
		return -EINVAL;
	}
	ks = keyset_section(c, kname);
	if (!ks) {
		*why = c->nkeysets == CONFIG_KEYSETS_MAX ? "too many [keyset] sections" : "out of memory";
		return -ENOMEM;
	}
	store_value(ks, k, value, n);
	return 0;
}

int config_set(struct config *c, const char *key, const char *value, const char **why)
{
	const struct config_key *k = config_key_find(key);

	*why = NULL;
	if (!k && !strncmp(key, "keyset ", strlen("keyset ")))
		return keyset_set(c, key, value, why);
	return set_row(c, k, value, why);
}

void config_free(struct config *c)
{
	free(c->keysets);
	c->keysets = NULL;
	c->nkeysets = 0;
}

const struct config_keyset *config_keyset(const struct config *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nkeysets; i++)
		if (!strcmp(c->keysets[i].name, name))
			return &c->keysets[i];
	return NULL;
}

void config_defaults(struct config *c)
{
	const struct config_key *k;
	const char *why;

	memset(c, 0, sizeof(*c));
	/* The defaults go through the same checks as any value; test_config
	 * proves each one passes, so a refusal here cannot happen. */
	for (k = config_keys; k->name; k++)
		if (k->def)
			(void)config_set(c, k->name, k->def, &why);
}

/* inifile's handler: a key of the configuration, "section.key". A
 * keyset's preset keeps its line, for the errors of config_presets(). */
static int on_key(void *arg, const char *section, const char *key, const char *value, int line,
		  const char **why)
{
	struct config *c = arg;
	char full[128];
	int ret;

	if (snprintf(full, sizeof(full), "%s.%s", section, key) >= (int)sizeof(full)) {
		*why = "unknown key";
		return -ENOENT;
	}
	ret = config_set(c, full, value, why);
	if (!ret && !strncmp(section, "keyset ", 7) && !strcmp(key, "preset"))
		((struct config_keyset *)config_keyset(c, section + 7))->preset_line = line;
	return ret;
}

int config_parse(struct config *c, const char *name, const char *text, char *err, size_t errlen)
{
	return inifile_parse(name, text, on_key, c, err, errlen);
}

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	char *text;
	int ret;

	ret = inifile_read(path, &text, err, errlen);
	if (ret)
		return ret;
	ret = config_parse(c, path, text, err, errlen);
	free(text);
	return ret;
}

/* What is wrong with a [keyset] section, or NULL: a command keyset has
 * no path, the command settings need a command, a path needs include. */
static const char *keyset_wrong(const struct config_keyset *ks)
{
	bool cmd = *ks->backup_command;

	if (!*ks->path && !cmd &&
	    (*ks->include || *ks->exclude || *ks->on_activate || ks->max_file_size))
		return "include, exclude, on_activate or max_file_size need a path";
	if (cmd && *ks->path)
		return "it has either a path or a backup_command";
	/* its members are the files the command leaves; restore_command
	 * does what on_activate would */
	if (cmd && (*ks->include || *ks->exclude || *ks->on_activate))
		return "a backup_command takes no include, exclude or on_activate";
	if (!cmd && (*ks->backup_stdout || *ks->restore_command || *ks->user || *ks->env ||
		     ks->refresh || ks->timeout))
		return "backup_stdout, restore_command, user, env, refresh or timeout need a "
		       "backup_command";
	if (*ks->path && !*ks->include)
		return "a path needs include";
	return NULL;
}

int config_check(const struct config *c, const char **why)
{
	static __thread char text[KEYSET_NAME_MAX + 128];

	if (*c->password_file && *c->password_credential) {
		*why = "password.file and password.credential exclude each other";
		return -EINVAL;
	}
	if (*c->identity_file && *c->identity_credential) {
		*why = "identity.file and identity.credential exclude each other";
		return -EINVAL;
	}
	if (c->import_max_size > c->import_max_total) {
		*why = "import.max_size is larger than import.max_total";
		return -EINVAL;
	}
	for (size_t i = 0; i < c->nkeysets; i++) {
		const char *wrong = keyset_wrong(&c->keysets[i]);

		if (wrong) {
			snprintf(text, sizeof(text), "[keyset %s]: %s", c->keysets[i].name, wrong);
			*why = text;
			return -EINVAL;
		}
	}
	if (config_import_max_work_factor(c) < c->work_factor) {
		*why = "import.max_work_factor is below seal.work_factor: keyfs could not "
		       "import its own backups";
		return -EINVAL;
	}
	return 0;
}

int config_import_max_work_factor(const struct config *c)
{
	/* Unset, it follows work_factor, whichever way that was set. */
	return c->import_max_work_factor ? c->import_max_work_factor : c->work_factor;
}

const char *config_backend(const struct config *c)
{
	return c->backend;
}
