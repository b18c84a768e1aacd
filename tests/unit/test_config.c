/* Unit tests for config.c: defaults, config_set (keys, aliases, ranges),
 * config_parse with "name:line: message" errors that name the key but
 * not the value, config_load of the shipped example, config_check, and
 * the table of keys row by row: defaults, limits and the refusals derived
 * from them, unknown keys with file:line, documentation of every key. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/config.h"

#include "tap.h"

static bool starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void test_defaults(void)
{
	struct config c;
	const char *why = NULL;

	memset(&c, 0x5a, sizeof(c));
	config_defaults(&c);
	tap_ok(!strcmp(c.store, "/var/lib/keyfs"), "default store /var/lib/keyfs");
	TAP_EQ_INT(c.work_factor, 18, "default work_factor 18");
	TAP_EQ_INT(c.policy, POLICY_COMPLEX, "default policy complex");
	TAP_EQ_INT(c.min_length, 8, "default min_length 8");
	TAP_EQ_INT(c.import_max_size, 32 << 20, "default import max_size 32 MiB");
	TAP_EQ_INT(c.import_max_total, 64 << 20, "default import max_total 64 MiB");
	TAP_EQ_INT(config_import_max_work_factor(&c), 18,
		   "default import.max_work_factor: the default work_factor");
	tap_ok(!c.allow_other, "default allow_other off");
	TAP_EQ_INT(config_check(&c, &why), 0, "defaults pass config_check");
}

/* config_set that must succeed. */
static void set_ok(struct config *c, const char *key, const char *value)
{
	const char *why = NULL;
	int ret = config_set(c, key, value, &why);

	tap_ok(ret == 0, "set %s = \"%s\" (ret %d, why %s)", key, value, ret, why ? why : "-");
}

/* config_set that must fail with want, leave *c unchanged and say why. */
static void set_bad(struct config *c, const char *key, const char *value, int want)
{
	struct config before = *c;
	const char *why = NULL;
	int ret = config_set(c, key, value, &why);

	tap_ok(ret == want && why && *why && !memcmp(&before, c, sizeof(before)),
	       "set %s = \"%s\" refused with %d (ret %d, why %s), config unchanged",
	       key, value, want, ret, why ? why : "-");
}

static void test_set(void)
{
	struct config c;
	char longpath[PATH_MAX + 8];

	config_defaults(&c);
	set_ok(&c, "store", "/srv/a");
	tap_ok(!strcmp(c.store, "/srv/a"), "alias \"store\" sets the store path");
	set_ok(&c, "store.path", "/srv/b");
	tap_ok(!strcmp(c.store, "/srv/b"), "store.path sets the store path");
	set_bad(&c, "store.path", "", -EINVAL);
	memset(longpath, 'p', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[PATH_MAX] = '\0';
	set_bad(&c, "store", longpath, -EINVAL);
	longpath[PATH_MAX - 1] = '\0';
	set_ok(&c, "store", longpath);
	TAP_EQ_INT(strlen(c.store), PATH_MAX - 1, "a PATH_MAX - 1 store path is kept whole");

	/* Any name: the store checks it (store_backend_check(), test_store). */
	set_ok(&c, "store.backend", "keyring");
	tap_ok(!strcmp(config_backend(&c), "keyring"), "store.backend is kept as given");
	set_ok(&c, "store.backend", "dir");
	tap_ok(!strcmp(config_backend(&c), "dir"), "... as its name");
	set_bad(&c, "store.backend", "", -EINVAL);

	set_ok(&c, "work_factor", "10");
	TAP_EQ_INT(c.work_factor, 10, "alias \"work_factor\" sets the work factor");
	set_ok(&c, "seal.work_factor", "22");
	TAP_EQ_INT(c.work_factor, 22, "seal.work_factor 22");
	set_bad(&c, "work_factor", "9", -EINVAL);
	set_bad(&c, "work_factor", "23", -EINVAL);
	set_bad(&c, "seal.work_factor", "1x", -EINVAL);
	set_bad(&c, "seal.work_factor", "", -EINVAL);
	set_bad(&c, "seal.work_factor", "0x10", -EINVAL);
	set_bad(&c, "seal.work_factor", "18.0", -EINVAL);
	set_bad(&c, "seal.work_factor", "-18", -EINVAL);
	set_bad(&c, "seal.work_factor", "99999999999999999999", -EINVAL);

	set_ok(&c, "password.policy", "length");
	TAP_EQ_INT(c.policy, POLICY_LENGTH, "policy length");
	set_ok(&c, "password.policy", "complex");
	TAP_EQ_INT(c.policy, POLICY_COMPLEX, "policy complex");
	set_bad(&c, "password.policy", "Complex", -EINVAL);
	set_ok(&c, "password.min_length", "128");
	TAP_EQ_INT(c.min_length, 128, "min_length 128");
	set_bad(&c, "password.min_length", "7", -EINVAL);
	set_bad(&c, "password.min_length", "129", -EINVAL);

	set_ok(&c, "import.max_size", "4096");
	TAP_EQ_INT(c.import_max_size, 4096, "import.max_size 4096");
	set_ok(&c, "import.max_total", "1073741824");
	TAP_EQ_INT(c.import_max_total, 1073741824, "import.max_total 1 GiB");
	set_bad(&c, "import.max_size", "4095", -EINVAL);
	set_bad(&c, "import.max_total", "1073741825", -EINVAL);

	set_ok(&c, "work_factor", "12");
	TAP_EQ_INT(config_import_max_work_factor(&c), 12,
		   "unset import.max_work_factor follows work_factor");
	set_ok(&c, "import.max_work_factor", "10");
	TAP_EQ_INT(config_import_max_work_factor(&c), 10, "import.max_work_factor 10");
	set_ok(&c, "import.max_work_factor", "22");
	TAP_EQ_INT(config_import_max_work_factor(&c), 22, "import.max_work_factor 22");
	set_bad(&c, "import.max_work_factor", "9", -EINVAL);
	set_bad(&c, "import.max_work_factor", "23", -EINVAL);
	set_bad(&c, "import.max_work_factor", "", -EINVAL);
	set_bad(&c, "import.max_work_factor", "16x", -EINVAL);
	set_bad(&c, "max_work_factor", "16", -ENOENT);	/* no -o alias */

	set_ok(&c, "mount.allow_other", "yes");
	tap_ok(c.allow_other, "allow_other yes");
	set_ok(&c, "mount.allow_other", "false");
	tap_ok(!c.allow_other, "allow_other false");
	set_bad(&c, "mount.allow_other", "maybe", -EINVAL);

	set_bad(&c, "nope", "1", -ENOENT);
	set_bad(&c, "seal.nope", "1", -ENOENT);
	set_bad(&c, "path", "/x", -ENOENT);		/* only "store" is an alias */
	set_bad(&c, "password.work_factor", "12", -ENOENT); /* key in the wrong section */
	set_bad(&c, "", "", -ENOENT);
}

static const char good_ini[] =
	"; every key, none at its default\n"
	"[store]\n"
	"path = /srv/keys\n"
	"backend = dir\n"
	"\n"
	"[seal]\n"
	"work_factor = 12 ; inline comment\n"
	"[password]\n"
	"policy = length\n"
	"min_length = 10\n"
	"[import]\n"
	"max_size = 8192\n"
	"max_total = 16384\n"
	"max_work_factor = 16\n"
	"[mount]\n"
	"allow_other = yes\n";

/* Parses text into a fresh default config; returns the result and the
 * error text in err. */
static int parse(struct config *c, const char *text, char *err, size_t errlen)
{
	config_defaults(c);
	err[0] = '\0';
	return config_parse(c, "test.ini", text, err, errlen);
}

static void test_parse(void)
{
	struct config c;
	char err[256];
	const char *why;
	int ret;

	ret = parse(&c, good_ini, err, sizeof(err));
	tap_ok(ret == 0, "a good INI parses (ret %d, err %s)", ret, err);
	tap_ok(!strcmp(c.store, "/srv/keys"), "[store] path");
	TAP_EQ_INT(c.work_factor, 12, "[seal] work_factor, inline comment stripped");
	TAP_EQ_INT(c.policy, POLICY_LENGTH, "[password] policy");
	TAP_EQ_INT(c.min_length, 10, "[password] min_length");
	TAP_EQ_INT(c.import_max_size, 8192, "[import] max_size");
	TAP_EQ_INT(c.import_max_total, 16384, "[import] max_total");
	TAP_EQ_INT(config_import_max_work_factor(&c), 16, "[import] max_work_factor");
	tap_ok(c.allow_other, "[mount] allow_other");
	TAP_EQ_INT(config_check(&c, &why), 0, "the good INI passes config_check");

	ret = parse(&c, "", err, sizeof(err));
	tap_ok(ret == 0 && c.work_factor == 18, "an empty file parses to the defaults");
	ret = parse(&c, "[seal]\r\nwork_factor = 11\r\n", err, sizeof(err));
	tap_ok(ret == 0 && c.work_factor == 11, "CRLF line ends (ret %d, err %s)", ret, err);
	ret = parse(&c, "[seal]\nwork_factor = 11", err, sizeof(err));
	tap_ok(ret == 0 && c.work_factor == 11, "no newline at the end (ret %d, err %s)", ret, err);

	/* A bad key on line 3. */
	ret = parse(&c, "[seal]\nwork_factor = 12\nbogus = 1\n", err, sizeof(err));
	TAP_EQ_INT(ret, -EINVAL, "an unknown key fails the parse");
	tap_ok(starts(err, "test.ini:3: "), "unknown key error starts \"test.ini:3: \" (%s)", err);
	tap_ok(strstr(err, "seal.bogus") && strstr(err, "unknown key"), "... names the key (%s)", err);

	/* A key outside any section. */
	ret = parse(&c, "work_factor = 12\n", err, sizeof(err));
	tap_ok(ret == -EINVAL && starts(err, "test.ini:1: "), "a key before any section fails on line 1 (%s)", err);

	/* Syntax errors. */
	ret = parse(&c, "[seal]\nwork_factor = 12\nthis line has no equals sign\n", err, sizeof(err));
	TAP_EQ_INT(ret, -EINVAL, "a syntax error fails the parse");
	tap_ok(!strcmp(err, "test.ini:3: syntax error"), "\"test.ini:3: syntax error\" (%s)", err);
	ret = parse(&c, "; c\n[seal\nwork_factor = 12\n", err, sizeof(err));
	tap_ok(ret == -EINVAL && !strcmp(err, "test.ini:2: syntax error"), "an unclosed section: line 2 (%s)", err);

	/* A value error on line 5, after comments and a blank line: the
	 * message names the key and the line, never the value. */
	ret = parse(&c, "; one\n# two\n\n[seal]\nwork_factor = 77777\n", err, sizeof(err));
	TAP_EQ_INT(ret, -EINVAL, "a bad value fails the parse");
	tap_ok(starts(err, "test.ini:5: "), "bad value error has \":5:\" (%s)", err);
	tap_ok(strstr(err, "seal.work_factor") != NULL, "... names the key (%s)", err);
	tap_ok(strstr(err, "77777") == NULL, "... does not print the value (%s)", err);

	/* Only the first error is reported. */
	ret = parse(&c, "[seal]\nwork_factor = 5\nwork_factor = 6\n", err, sizeof(err));
	tap_ok(ret == -EINVAL && starts(err, "test.ini:2: "), "the first of two errors is reported (%s)", err);

	/* Line numbers past a line longer than inih's line buffer
	 * (INI_MAX_LINE, 200 by default). */
	{
		char text[1024];
		char filler[400];

		memset(filler, 'x', sizeof(filler) - 1);
		filler[sizeof(filler) - 1] = '\0';
		snprintf(text, sizeof(text), "; %s\n[seal]\nbogus = 1\n", filler);
		ret = parse(&c, text, err, sizeof(err));
		tap_ok(ret == -EINVAL && starts(err, "test.ini:3: ") && strstr(err, "seal.bogus"),
		       "after a long comment line, a bad key is on line 3 (%s)", err);

		snprintf(text, sizeof(text), "; %s\n[seal]\nwork_factor = 12\n", filler);
		ret = parse(&c, text, err, sizeof(err));
		tap_ok(ret == 0 && c.work_factor == 12,
		       "a comment longer than inih's buffer is still a comment (ret %d, err %s)", ret, err);

		snprintf(text, sizeof(text), "; %s\n[seal]\nno equals\n", filler);
		ret = parse(&c, text, err, sizeof(err));
		tap_ok(ret == -EINVAL && !strcmp(err, "test.ini:3: syntax error"),
		       "after a long comment line, a syntax error is on line 3 (%s)", err);
	}

	/* A value longer than inih's line buffer (199 bytes a line) is
	 * refused on its own line, never silently cut. */
	{
		char text[600], want[300];

		memset(want, 'd', sizeof(want) - 1);
		want[0] = '/';
		want[sizeof(want) - 1] = '\0';
		snprintf(text, sizeof(text), "[store]\npath = %s\n", want);
		ret = parse(&c, text, err, sizeof(err));
		tap_ok(ret == -EINVAL && !strcmp(err, "test.ini:2: line too long"),
		       "a 299-byte store path line is refused as too long (ret %d, err %s)", ret, err);
	}

	/* A small error buffer truncates, never overflows. */
	{
		char small[8];

		memset(small, 'Q', sizeof(small));
		config_defaults(&c);
		ret = config_parse(&c, "a-long-file-name.ini", "[x]\ny = 1\n", small, 6);
		tap_ok(ret == -EINVAL && strlen(small) == 5 && small[6] == 'Q' && small[7] == 'Q',
		       "err is truncated to errlen (%s)", small);
	}
}

static void test_load(void)
{
	const char *vectors = getenv("VECTORS");
	char path[PATH_MAX], err[256];
	struct config c, d;
	int ret;

	/* VECTORS is <root>/tests/vectors/age: the example is <root>/conf. */
	if (!vectors || snprintf(path, sizeof(path), "%s/../../../conf/keyfs.ini", vectors) >= (int)sizeof(path)) {
		tap_ok(false, "VECTORS is set (meson test sets it)");
		return;
	}
	config_defaults(&c);
	config_defaults(&d);
	err[0] = '\0';
	ret = config_load(&c, path, err, sizeof(err));
	tap_ok(ret == 0, "the shipped conf/keyfs.ini loads (ret %d, err %s)", ret, err);
	tap_ok(!memcmp(&c, &d, sizeof(c)), "conf/keyfs.ini shows exactly the defaults");

	ret = config_load(&c, "/nonexistent/keyfs.ini", err, sizeof(err));
	TAP_EQ_INT(ret, -ENOENT, "config_load of a missing file: -ENOENT");
	tap_ok(starts(err, "/nonexistent/keyfs.ini: "), "... err names the file (%s)", err);

	/* A file past the size cap. */
	{
		char tmp[] = "/tmp/keyfs-test-config.XXXXXX";
		int fd = mkstemp(tmp);
		char *big = malloc(70 * 1024);

		if (fd >= 0 && big) {
			memset(big, ';', 70 * 1024);
			if (write(fd, big, 70 * 1024) != 70 * 1024)
				tap_ok(false, "write");
			ret = config_load(&c, tmp, err, sizeof(err));
			TAP_EQ_INT(ret, -EFBIG, "a 70 KiB config file: -EFBIG (%s)", err);
		} else {
			tap_ok(false, "mkstemp");
		}
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		free(big);
	}
}

static void test_check(void)
{
	struct config c;
	const char *why = NULL;

	config_defaults(&c);
	c.import_max_size = 64 << 20;
	c.import_max_total = 64 << 20;
	TAP_EQ_INT(config_check(&c, &why), 0, "max_size == max_total is fine");
	c.import_max_size = (64 << 20) + 1;
	TAP_EQ_INT(config_check(&c, &why), -EINVAL, "max_size > max_total: -EINVAL");
	tap_ok(why && strstr(why, "max_size"), "config_check says why (%s)", why ? why : "-");

	config_defaults(&c);
	c.work_factor = 20;
	TAP_EQ_INT(config_check(&c, &why), 0, "import.max_work_factor unset, work_factor 20: fine");
	c.import_max_work_factor = 19;
	TAP_EQ_INT(config_check(&c, &why), -EINVAL,
		   "import.max_work_factor below work_factor: -EINVAL");
	tap_ok(why && strstr(why, "max_work_factor"), "config_check says why (%s)", why ? why : "-");
	c.import_max_work_factor = 20;
	TAP_EQ_INT(config_check(&c, &why), 0, "import.max_work_factor == work_factor: fine");
}


/* ---- the table of keys: every row, from its own fields ---- */

/* "section.key" of k split into section and key. */
static void split_name(const struct config_key *k, char *section, char *key, size_t size)
{
	const char *dot = strchr(k->name, '.');

	snprintf(section, size, "%.*s", dot ? (int)(dot - k->name) : 0, k->name);
	snprintf(key, size, "%s", dot ? dot + 1 : k->name);
}

static long long field_number(const struct config *c, const struct config_key *k)
{
	const char *field = (const char *)c + k->offset;
	size_t z;
	int i;

	if (k->type == CONFIG_SIZE) {
		memcpy(&z, field, sizeof(z));
		return (long long)z;
	}
	memcpy(&i, field, sizeof(i));
	return i;
}

static void test_table_rows(void)
{
	const struct config_key *k, *j;
	char section[64], key[64];
	size_t n = 0;

	for (k = config_keys; k->name; k++, n++) {
		split_name(k, section, key, sizeof(section));
		tap_ok(*section && *key && !strchr(key, '.'), "%s is \"section.key\"", k->name);
		tap_ok(k->help && *k->help && !strchr(k->help, '\n'), "%s has a one-line help", k->name);
		tap_ok(config_key_find(k->name) == k, "%s is found by its name", k->name);
		if (k->alias)
			tap_ok(config_key_find(k->alias) == k && !strchr(k->alias, '.'),
			       "%s is found by its alias %s", k->name, k->alias);
		for (j = config_keys; j < k; j++)
			tap_ok(strcmp(j->name, k->name) && (!k->alias || !j->alias || strcmp(j->alias, k->alias)),
			       "%s and %s differ in name and alias", j->name, k->name);
		if (k->type == CONFIG_INT || k->type == CONFIG_SIZE)
			tap_ok(k->min <= k->max, "%s: min <= max", k->name);
		if (k->type == CONFIG_CHOICE)
			tap_ok(k->choices && k->choices[0], "%s has choices", k->name);
	}
	TAP_EQ_INT(n, 22, "22 keys in the table");
	tap_ok(config_key_find("nope") == NULL && config_key_find("") == NULL, "unknown names are not found");
}

/* Each default parses, and config_defaults() holds exactly the row
 * defaults: a row without one leaves its field zero. */
static void test_table_defaults(void)
{
	const struct config_key *k;
	struct config d, fresh, zero;
	const char *why;

	config_defaults(&d);
	memset(&zero, 0, sizeof(zero));
	for (k = config_keys; k->name; k++) {
		if (!k->def) {
			tap_ok(!memcmp((char *)&d + k->offset, (char *)&zero + k->offset, k->size),
			       "%s has no default: its field is zero", k->name);
			continue;
		}
		memset(&fresh, 0, sizeof(fresh));
		TAP_EQ_INT(config_set(&fresh, k->name, k->def, &why), 0, "%s: the default \"%s\" is valid",
			   k->name, k->def);
		tap_ok(!memcmp((char *)&d + k->offset, (char *)&fresh + k->offset, k->size),
		       "%s: config_defaults() sets the row's default", k->name);
		fresh = d;
		config_set(&fresh, k->name, k->def, &why);
		tap_ok(!memcmp(&fresh, &d, sizeof(d)), "%s: setting the default changes nothing", k->name);
	}
}

/* config_parse() of one key in its section; the error text in err. */
static int parse_one(const struct config_key *k, const char *value, struct config *c, char *err, size_t errlen)
{
	char section[64], key[64], text[512];

	split_name(k, section, key, sizeof(section));
	snprintf(text, sizeof(text), "; a comment\n[%s]\n%s = %s\n", section, key, value);
	config_defaults(c);
	err[0] = '\0';
	return config_parse(c, "test.ini", text, err, errlen);
}

/* Numbers: both limits taken, one past either refused in the words the
 * row implies, on the line of the key; the -o alias behaves the same. */
static void test_table_ranges(void)
{
	const struct config_key *k;
	char value[32], want[256], err[512];
	const char *why;
	struct config c;
	long long v;
	size_t i;
	int ret;

	for (k = config_keys; k->name; k++) {
		if (k->type != CONFIG_INT && k->type != CONFIG_SIZE)
			continue;
		snprintf(want, sizeof(want), "test.ini:3: %s: must be %s from %lld to %lld", k->name,
			 k->type == CONFIG_INT ? "a whole number" : "a number of bytes", k->min, k->max);
		long long tries[] = { k->min - 1, k->min, k->max, k->max + 1 };

		for (i = 0; i < 4; i++) {
			bool in = i == 1 || i == 2;

			v = tries[i];

			snprintf(value, sizeof(value), "%lld", v);
			ret = parse_one(k, value, &c, err, sizeof(err));
			if (in)
				tap_ok(ret == 0 && field_number(&c, k) == v, "%s = %lld is taken (%s)", k->name, v, err);
			else
				tap_ok(ret == -EINVAL && !strcmp(err, want), "%s = %lld: \"%s\" (got \"%s\")",
				       k->name, v, want, err);
			if (k->alias) {
				config_defaults(&c);
				ret = config_set(&c, k->alias, value, &why);
				tap_ok(in ? ret == 0 && field_number(&c, k) == v
					  : ret == -EINVAL && !strcmp(why, want + strlen("test.ini:3: ") + strlen(k->name) + 2),
				       "-o %s=%lld as %s (why %s)", k->alias, v, k->name, why ? why : "-");
			}
		}
	}

	/* The derived words, spelled out once. */
	parse_one(config_key_find("work_factor"), "23", &c, err, sizeof(err));
	tap_ok(!strcmp(err, "test.ini:3: seal.work_factor: must be a whole number from 10 to 22"), "%s", err);
	parse_one(config_key_find("import.max_size"), "1", &c, err, sizeof(err));
	tap_ok(!strcmp(err, "test.ini:3: import.max_size: must be a number of bytes from 4096 to 1073741824"),
	       "%s", err);
}

/* Every other type: one good and one bad value, and the bad one's words. */
static void test_table_types(void)
{
	static const struct {
		const char *key, *good, *bad, *why;
	} cases[] = {
		{ "store.path", "relative/ok", "", "must not be empty or longer than 4095 bytes" },
		{ "store.backend", "dir", "", "must not be empty or longer than 31 bytes" },
		{ "state.dir", "/var/lib/keyfs-state", "state", "must be an absolute path of at most 4095 bytes" },
		{ "password.policy", "length", "simple", "must be \"complex\" or \"length\"" },
		{ "import.unauthenticated", "refuse", "allow",
		  "must be \"inactive\" or \"refuse\"" },
		{ "password.file", "/etc/keyfs/pw", "etc/keyfs/pw", "must be an absolute path of at most 4095 bytes" },
		{ "password.agent", "/run/a.sock", "", "must be an absolute path of at most 4095 bytes" },
		{ "password.credential", "keyfs.password", "..",
		  "must be a plain name of at most 255 bytes (no \"/\", not \".\" or \"..\"), as in LoadCredential=" },
		{ "password.credential", "x", "a/b", NULL },
		{ "password.credential", "y", "", NULL },
		{ "mount.allow_other", "1", "on", "must be yes or no" },
		{ "metrics.file", "/var/lib/node_exporter/keyfs.prom", "keyfs.prom",
		  "must be an absolute path of at most 4095 bytes" },
		{ "metrics.per_keyset", "no", "off", "must be yes or no" },
		{ "seal.recipients", "/etc/keyfs/recipients.txt", "recipients.txt",
		  "must be an absolute path of at most 4095 bytes" },
		{ "identity.file", "/etc/keyfs/identity.txt", "identity.txt",
		  "must be an absolute path of at most 4095 bytes" },
		{ "import.signers", "/etc/keyfs/allowed_signers", "allowed_signers",
		  "must be an absolute path of at most 4095 bytes" },
		{ "identity.credential", "keyfs.identity", "a/b",
		  "must be a plain name of at most 255 bytes (no \"/\", not \".\" or \"..\"), as in LoadCredential=" },
		{ "presets.dir", "/etc/keyfs/presets", "presets",
		  "must be an absolute path of at most 4095 bytes" },
	};
	const struct config_key *k;
	char err[512], want[512];
	struct config c;
	size_t i;
	bool seen[64] = { false };

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		k = config_key_find(cases[i].key);
		if (!tap_ok(k != NULL, "%s is a key", cases[i].key))
			continue;
		seen[k - config_keys] = true;
		tap_ok(parse_one(k, cases[i].good, &c, err, sizeof(err)) == 0, "%s = %s (%s)", k->name,
		       cases[i].good, err);
		TAP_EQ_INT(parse_one(k, cases[i].bad, &c, err, sizeof(err)), -EINVAL, "%s = \"%s\" refused",
			   k->name, cases[i].bad);
		if (cases[i].why) {
			snprintf(want, sizeof(want), "test.ini:3: %s: %s", k->name, cases[i].why);
			tap_ok(!strcmp(err, want), "... \"%s\" (got \"%s\")", want, err);
		}
		if (*cases[i].bad && (!cases[i].why || !strstr(cases[i].why, cases[i].bad)))
			tap_ok(!strstr(err + strlen("test.ini:3: ") + strlen(k->name), cases[i].bad),
			       "... without the value");
	}
	for (k = config_keys; k->name; k++)
		if (k->type != CONFIG_INT && k->type != CONFIG_SIZE)
			tap_ok(seen[k - config_keys], "%s is tried above", k->name);
}

/* An unknown key in any section of the table fails on its own line. */
static void test_table_unknown(void)
{
	const struct config_key *k;
	char section[64], key[64], text[256], want[256], err[256];
	struct config c;

	for (k = config_keys; k->name; k++) {
		split_name(k, section, key, sizeof(section));
		snprintf(text, sizeof(text), "[%s]\n; %s\n\nbogus_%s = 1\n", section, key, key);
		snprintf(want, sizeof(want), "test.ini:4: %s.bogus_%s: unknown key", section, key);
		config_defaults(&c);
		TAP_EQ_INT(config_parse(&c, "test.ini", text, err, sizeof(err)), -EINVAL,
			   "[%s] bogus_%s refused", section, key);
		tap_ok(!strcmp(err, want), "... as \"%s\" (got \"%s\")", want, err);
	}
}

/* Reads a file of the source tree (VECTORS is <root>/tests/vectors/age). */
static char *source_file(const char *rel)
{
	const char *vectors = getenv("VECTORS");
	char path[PATH_MAX];
	FILE *f;
	char *text;
	size_t n;

	if (!vectors || snprintf(path, sizeof(path), "%s/../../../%s", vectors, rel) >= (int)sizeof(path))
		return NULL;
	f = fopen(path, "r");
	if (!f)
		return NULL;
	text = calloc(1, 1 << 17);
	n = text ? fread(text, 1, (1 << 17) - 1, f) : 0;
	(void)n;
	fclose(f);
	return text;
}

/* Each row is documented: in keyfs.ini(5) under its section, with its
 * alias, and in the example configuration. */
static void test_table_documented(void)
{
	char *man = source_file("man/keyfs.ini.5"), *ini = source_file("conf/keyfs.ini");
	char section[64], key[64], want[160], *body, *end;
	const struct config_key *k;

	if (!tap_ok(man && ini, "man/keyfs.ini.5 and conf/keyfs.ini are readable"))
		goto out;
	for (k = config_keys; k->name; k++) {
		split_name(k, section, key, sizeof(section));
		snprintf(want, sizeof(want), ".SH SECTION [%s]\n", section);
		body = strstr(man, want);
		end = body ? strstr(body + 1, "\n.SH ") : NULL;
		snprintf(want, sizeof(want), "\n.BI %s \"", key);
		body = body ? strstr(body, want) : NULL;
		tap_ok(body && (!end || body < end), "keyfs.ini(5) documents %s", k->name);
		if (k->alias) {
			snprintf(want, sizeof(want), ".BI \\-o \" %s=", k->alias);
			tap_ok(strstr(man, want) != NULL, "keyfs.ini(5) names -o %s", k->alias);
		}
		snprintf(want, sizeof(want), "\n[%s]\n", section);
		body = strstr(ini, want);
		end = body ? strstr(body + 1, "\n[") : NULL;
		snprintf(want, sizeof(want), "\n%s%s = ", k->def ? "" : ";", key);
		body = body ? strstr(body, want) : NULL;
		tap_ok(body && (!end || body < end), "conf/keyfs.ini shows %s%s", k->name,
		       k->def ? "" : " (commented out: no default)");
	}
	/* The keys of [keyset NAME] sections, in their section and the example. */
	body = strstr(man, ".SH SECTIONS [keyset NAME]\n");
	end = body ? strstr(body + 1, "\n.SH ") : NULL;
	for (k = config_keyset_keys; k->name; k++) {
		snprintf(want, sizeof(want), "\n.BI %s \"", k->name + strlen("keyset."));
		tap_ok(body && strstr(body, want) && (!end || strstr(body, want) < end),
		       "keyfs.ini(5) documents %s", k->name);
		snprintf(want, sizeof(want), ";   %s = ", k->name + strlen("keyset."));
		tap_ok(strstr(ini, want) != NULL, "conf/keyfs.ini shows %s", k->name);
	}
out:
	free(man);
	free(ini);
}

/* The text of one option in --help: from its line to the next option,
 * the help's line breaks and indents made single spaces. */
static void usage_entry(const char *line, char *out, size_t size)
{
	const char *end = strstr(line + 1, "\n  -");
	size_t n = 0;

	end = end ? end : line + strlen(line);
	for (; line < end && n + 1 < size; line++) {
		if (*line == '\n' || (*line == ' ' && n && out[n - 1] == ' '))
			continue;
		out[n++] = *line;
	}
	out[n] = '\0';
}

/* The -o options: each row with an alias is one line of keyfs --help,
 * with its limits, choices and default from the row, and the option
 * that names it reaches that row. */
static void test_usage(void)
{
	const struct config_key *k;
	char want[128], entry[512], *text = NULL, *line, *next;
	size_t len = 0, i;
	FILE *f = open_memstream(&text, &len);

	if (!tap_ok(f != NULL, "open_memstream"))
		return;
	config_usage(f);
	fclose(f);
	for (k = config_keys; k->name; k++) {
		if (!k->alias) {
			snprintf(want, sizeof(want), "-o %s", k->name);
			tap_ok(!strstr(text, want), "no -o line for %s (no alias)", k->name);
			continue;
		}
		snprintf(want, sizeof(want), "  -o %s=", k->alias);
		line = strstr(text, want);
		if (!tap_ok(line && (line == text || line[-1] == '\n'), "--help has -o %s", k->alias))
			continue;
		tap_ok(!strstr(line + 1, want), "... once");
		usage_entry(line, entry, sizeof(entry));
		tap_ok(strstr(entry, k->help) != NULL, "... with its help");
		if (k->type == CONFIG_INT || k->type == CONFIG_SIZE) {
			snprintf(want, sizeof(want), "%lld..%lld", k->min, k->max);
			tap_ok(strstr(entry, want) != NULL, "... and its bounds %s", want);
		}
		for (i = 0; k->type == CONFIG_CHOICE && k->choices[i]; i++)
			tap_ok(strstr(entry, k->choices[i]) != NULL, "... and its choice %s",
			       k->choices[i]);
		if (k->def) {
			snprintf(want, sizeof(want), "default %s", k->def);
			tap_ok(strstr(entry, want) != NULL, "... and its default");
		}
	}
	for (line = text; *line; line = next + 1) {
		next = strchr(line, '\n');
		if (!tap_ok(next != NULL, "--help ends its lines"))
			break;
		tap_ok(next - line <= 79, "--help line of %zu columns", (size_t)(next - line));
	}
	free(text);

	for (k = config_keys; k->name; k++) {
		if (!k->alias)
			continue;
		snprintf(want, sizeof(want), "%s=1", k->alias);
		tap_ok(config_option(want) == k, "-o %s is %s", want, k->name);
		tap_ok(config_option(k->alias) == NULL, "-o %s (no value) is not", k->alias);
	}
	tap_ok(config_option("allow_other") == NULL, "-o allow_other is libfuse's");
	tap_ok(config_option("seal.work_factor=12") == NULL, "-o takes aliases, not key names");
	tap_ok(config_option("storex=1") == NULL, "-o storex=1 is no alias");
}

/* [keyset NAME] sections: keys of their own, one section per name, and
 * names and keys checked like any other. */
static void test_keyset_sections(void)
{
	static const char text[] = "[seal]\nrecipients = /etc/keyfs/all.txt\n"
				   "[keyset sm]\nrecipients = /etc/keyfs/sm.txt\n"
				   "[keyset web.example.org]\nrecipients = /etc/keyfs/web.txt\n"
				   "[keyset sm]\nrecipients = /etc/keyfs/sm2.txt\n";
	const struct config_keyset *ks;
	const char *why;
	char err[256];
	struct config c;

	config_defaults(&c);
	TAP_EQ_INT(config_parse(&c, "test.ini", text, err, sizeof(err)), 0, "keyset sections parse (%s)",
		   err);
	TAP_EQ_INT(c.nkeysets, 2, "one section per keyset name");
	ks = config_keyset(&c, "sm");
	tap_ok(ks && !strcmp(ks->recipients, "/etc/keyfs/sm2.txt"), "the last value of a key counts");
	ks = config_keyset(&c, "web.example.org");
	tap_ok(ks && !strcmp(ks->recipients, "/etc/keyfs/web.txt"), "a name with dots");
	tap_ok(!strcmp(c.recipients, "/etc/keyfs/all.txt"), "seal.recipients beside them");
	tap_ok(config_keyset(&c, "other") == NULL, "no section, no settings");
	config_free(&c);
	TAP_EQ_INT(c.nkeysets, 0, "config_free() drops them");

	config_defaults(&c);
	TAP_EQ_INT(config_parse(&c, "test.ini", "[keyset ssh]\npath = /etc/ssh\ninclude = ssh_host_* a/**\n"
				"on_activate = /bin/true\nmax_file_size = 1024\n", err, sizeof(err)), 0,
		   "a live keyset parses (%s)", err);
	ks = config_keyset(&c, "ssh");
	tap_ok(ks && !strcmp(ks->path, "/etc/ssh") && !strcmp(ks->include, "ssh_host_* a/**") &&
	       !strcmp(ks->on_activate, "/bin/true") && ks->max_file_size == 1024, "... with its keys");
	TAP_EQ_INT(config_check(&c, &why), 0, "... and checks");
	config_free(&c);
	config_defaults(&c);
	config_parse(&c, "test.ini", "[keyset ssh]\npath = /etc/ssh\n", err, sizeof(err));
	TAP_EQ_INT(config_check(&c, &why), -EINVAL, "a path without include is refused");
	config_free(&c);
	config_defaults(&c);
	config_parse(&c, "test.ini", "[keyset ssh]\ninclude = *\n", err, sizeof(err));
	TAP_EQ_INT(config_check(&c, &why), -EINVAL, "include without a path is refused");
	config_free(&c);

	config_defaults(&c);
	TAP_EQ_INT(config_parse(&c, "test.ini", "[keyset sm]\nbogus = 1\n", err, sizeof(err)), -EINVAL,
		   "an unknown keyset key is refused");
	tap_ok(!strcmp(err, "test.ini:2: keyset sm.bogus: unknown key"), "... as %s", err);
	TAP_EQ_INT(config_parse(&c, "test.ini", "[keyset .hidden]\nrecipients = /r\n", err, sizeof(err)),
		   -EINVAL, "an invalid keyset name is refused");
	tap_ok(strstr(err, "test.ini:2: keyset .hidden.recipients: not a keyset name") == err, "... as %s", err);
	TAP_EQ_INT(config_parse(&c, "test.ini", "[keyset sm]\nrecipients = r.txt\n", err, sizeof(err)),
		   -EINVAL, "a relative recipients path is refused");
	tap_ok(!strcmp(err, "test.ini:2: keyset sm.recipients: must be an absolute path of at most 4095 bytes"),
	       "... as %s", err);
	config_free(&c);
}

/* Command keysets: their keys parse, go only with a backup_command, and
 * exclude the live keyset's; the shipped examples load and check. */
static void test_command_sections(void)
{
	static const char *const refused[] = {
		"[keyset k]\nbackup_command = /bin/true\npath = /etc/k\ninclude = *\n",
		"[keyset k]\nbackup_command = /bin/true\ninclude = *\n",
		"[keyset k]\nbackup_command = /bin/true\non_activate = /bin/true\n",
		"[keyset k]\nrestore_command = /bin/true\n",
		"[keyset k]\nrefresh = 10\n",
		"[keyset k]\nuser = nobody\n",
		"[keyset k]\npath = /etc/k\ninclude = *\ntimeout = 5\n",
	};
	const struct config_keyset *ks;
	char err[256], *text;
	const char *why;
	struct config c;
	size_t i;

	config_defaults(&c);
	TAP_EQ_INT(config_parse(&c, "test.ini",
				"[keyset gpg]\nbackup_command = gpg --export-secret-keys\n"
				"backup_stdout = keys.asc\nrestore_command = gpg --import keys.asc\n"
				"user = nobody\nenv = GNUPGHOME=/g A=b\nrefresh = 10\ntimeout = 5\n"
				"max_file_size = 4096\n", err, sizeof(err)), 0,
		   "a command keyset parses (%s)", err);
	ks = config_keyset(&c, "gpg");
	tap_ok(ks && !strcmp(ks->backup_command, "gpg --export-secret-keys") &&
	       !strcmp(ks->backup_stdout, "keys.asc") &&
	       !strcmp(ks->restore_command, "gpg --import keys.asc") && !strcmp(ks->user, "nobody") &&
	       !strcmp(ks->env, "GNUPGHOME=/g A=b") && ks->refresh == 10 && ks->timeout == 5 &&
	       ks->max_file_size == 4096, "... with its keys");
	TAP_EQ_INT(config_check(&c, &why), 0, "... and checks");
	config_free(&c);
	config_defaults(&c);
	TAP_EQ_INT(config_parse(&c, "test.ini", "[keyset k]\nbackup_stdout = a/b\n", err,
				sizeof(err)), -EINVAL, "backup_stdout must be a plain name (%s)", err);
	TAP_EQ_INT(config_parse(&c, "test.ini", "[keyset k]\nrefresh = 0\n", err, sizeof(err)),
		   -EINVAL, "refresh 0 is refused (%s)", err);
	config_free(&c);
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		config_defaults(&c);
		why = NULL;
		TAP_EQ_INT(config_parse(&c, "test.ini", refused[i], err, sizeof(err)), 0,
			   "refused case %zu parses (%s)", i, err);
		TAP_EQ_INT(config_check(&c, &why), -EINVAL, "... but does not check: %s",
			   why ? why : "-");
		config_free(&c);
	}
	text = source_file("conf/command-keysets.ini");
	if (tap_ok(text != NULL, "conf/command-keysets.ini is readable")) {
		config_defaults(&c);
		TAP_EQ_INT(config_parse(&c, "command-keysets.ini", text, err, sizeof(err)), 0,
			   "the shipped command keyset examples parse (%s)", err);
		TAP_EQ_INT(c.nkeysets, 5, "... five of them");
		TAP_EQ_INT(config_check(&c, &why), 0, "... and check");
		config_free(&c);
	}
	free(text);
}

int main(void)
{
	if (sodium_init() < 0) {
		tap_ok(false, "sodium_init");
		return tap_done();
	}
	test_defaults();
	test_set();
	test_parse();
	test_load();
	test_check();
	test_table_rows();
	test_table_defaults();
	test_table_ranges();
	test_table_types();
	test_table_unknown();
	test_table_documented();
	test_usage();
	test_keyset_sections();
	test_command_sections();
	return tap_done();
}
