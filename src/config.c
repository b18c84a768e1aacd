#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keyfs/age.h"
#include "keyfs/config.h"

#define CONFIG_FILE_MAX (64 * 1024)

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->store, CONFIG_DEFAULT_STORE);
	c->work_factor = AGE_LOGN_DEFAULT;
	c->seal_memory = (size_t)1 << 30;
	c->policy = POLICY_COMPLEX;
	c->min_length = 8;
	c->import_max_size = 1 << 20;
	c->import_max_total = 64 << 20;
}

static int parse_long(const char *v, long lo, long hi, long *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < lo || n > hi)
		return -EINVAL;
	*out = n;
	return 0;
}

static int parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"))
		*out = true;
	else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

static int set_path(char *dst, size_t size, const char *value, const char **why)
{
	if (*value != '/' || strlen(value) >= size) {
		*why = "must be an absolute path";
		return -EINVAL;
	}
	strcpy(dst, value);
	return 0;
}

int config_set(struct config *c, const char *key, const char *value, const char **why)
{
	long n;

	*why = NULL;
	if (!strcmp(key, "store.path") || !strcmp(key, "store")) {
		if (!*value || strlen(value) >= sizeof(c->store)) {
			*why = "store path is empty or too long";
			return -EINVAL;
		}
		strcpy(c->store, value);
	} else if (!strcmp(key, "store.backend")) {
		if (strcmp(value, "dir")) {
			*why = "the only keystore backend is \"dir\"";
			return -EINVAL;
		}
	} else if (!strcmp(key, "seal.work_factor") || !strcmp(key, "work_factor")) {
		if (parse_long(value, AGE_LOGN_MIN, AGE_LOGN_MAX, &n)) {
			*why = "work_factor must be a whole number from 10 to 22";
			return -EINVAL;
		}
		c->work_factor = (int)n;
	} else if (!strcmp(key, "seal.memory")) {
		if (parse_long(value, 1 << 20, 1L << 40, &n)) {
			*why = "memory is bytes, from 1048576 to 1099511627776";
			return -EINVAL;
		}
		c->seal_memory = (size_t)n;
	} else if (!strcmp(key, "password.policy")) {
		if (!strcmp(value, "complex"))
			c->policy = POLICY_COMPLEX;
		else if (!strcmp(value, "length"))
			c->policy = POLICY_LENGTH;
		else {
			*why = "policy must be \"complex\" or \"length\"";
			return -EINVAL;
		}
	} else if (!strcmp(key, "password.min_length")) {
		if (parse_long(value, 8, 128, &n)) {
			*why = "min_length must be a whole number from 8 to 128";
			return -EINVAL;
		}
		c->min_length = (int)n;
	} else if (!strcmp(key, "import.max_size") || !strcmp(key, "import.max_total")) {
		if (parse_long(value, 4096, 1L << 30, &n)) {
			*why = "import sizes are bytes, from 4096 to 1073741824";
			return -EINVAL;
		}
		if (!strcmp(key, "import.max_size"))
			c->import_max_size = (size_t)n;
		else
			c->import_max_total = (size_t)n;
	} else if (!strcmp(key, "import.max_work_factor")) {
		if (parse_long(value, AGE_LOGN_MIN, AGE_LOGN_MAX, &n)) {
			*why = "max_work_factor must be a whole number from 10 to 22";
			return -EINVAL;
		}
		c->import_max_work_factor = (int)n;
	} else if (!strcmp(key, "password.agent") || !strcmp(key, "agent")) {
		return set_path(c->agent, sizeof(c->agent), value, why);
	} else if (!strcmp(key, "password.file") || !strcmp(key, "password_file")) {
		return set_path(c->password_file, sizeof(c->password_file), value, why);
	} else if (!strcmp(key, "password.credential") || !strcmp(key, "password_credential")) {
		if (strchr(value, '/') || !strcmp(value, ".") || !strcmp(value, "..") ||
		    strlen(value) >= sizeof(c->password_credential)) {
			*why = "a credential is a plain name, as in LoadCredential=";
			return -EINVAL;
		}
		strcpy(c->password_credential, value);
	} else if (!strcmp(key, "mount.allow_other")) {
		if (parse_bool(value, &c->allow_other)) {
			*why = "allow_other must be yes or no";
			return -EINVAL;
		}
	} else {
		*why = "unknown key";
		return -ENOENT;
	}
	return 0;
}

/* inih's handler is not told the line (Debian builds it without
 * INI_HANDLER_LINENO), so the reader counts lines for it, handing inih
 * exactly one line per call so that both counts agree. */
struct parse_state {
	struct config *c;
	const char *next;	/* unread text */
	int line;		/* number of the line last handed to inih */
	int err_line;		/* line of the first refused key, or 0 */
	int long_line;		/* first line too long for inih, or 0 */
	char why[200];		/* what was wrong on err_line */
};

static char *read_line(char *str, int num, void *stream)
{
	struct parse_state *st = stream;
	const char *nl;
	size_t n;

	if (!*st->next || num < 2)
		return NULL;
	nl = strchr(st->next, '\n');
	n = nl ? (size_t)(nl - st->next) + 1 : strlen(st->next);
	st->line++;
	st->next += n;
	if (n > (size_t)num - 1) {
		const char *p = st->next - n + strspn(st->next - n, " \t");

		/* Too long for inih's buffer: a comment is skipped, anything
		 * else becomes a line inih refuses. */
		if (*p != ';' && *p != '#' && !st->long_line)
			st->long_line = st->line;
		strcpy(str, *p == ';' || *p == '#' ? "\n" : "[\n");
		return str;
	}
	memcpy(str, st->next - n, n);
	str[n] = '\0';
	return str;
}

static int on_key(void *user, const char *section, const char *key, const char *value)
{
	struct parse_state *st = user;
	char full[128];
	const char *why;
	int ret;

	if (snprintf(full, sizeof(full), "%s.%s", section, key) >= (int)sizeof(full)) {
		ret = -ENOENT;
		why = "unknown key";
	} else {
		ret = config_set(st->c, full, value, &why);
	}
	if (ret && !st->err_line) {
		snprintf(st->why, sizeof(st->why), "%s: %s", full, why);
		st->err_line = st->line;
	}
	return !ret;
}

int config_parse(struct config *c, const char *name, const char *text, char *err, size_t errlen)
{
	struct parse_state st = { .c = c, .next = text };
	int line;

	line = ini_parse_stream(read_line, &st, on_key, &st);
	if (!line)
		return 0;
	/* inih returns the first failing line, refused key or not */
	if (line == st.err_line)
		snprintf(err, errlen, "%s:%d: %s", name, line, st.why);
	else if (line == st.long_line)
		snprintf(err, errlen, "%s:%d: line too long", name, line);
	else
		snprintf(err, errlen, "%s:%d: syntax error", name, line);
	return -EINVAL;
}

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	char *text = NULL;
	ssize_t n;
	size_t len = 0;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	text = malloc(CONFIG_FILE_MAX + 1);
	if (!text) {
		ret = -ENOMEM;
		goto out;
	}
	while ((n = read(fd, text + len, CONFIG_FILE_MAX + 1 - len)) > 0)
		len += (size_t)n;
	if (n < 0 || len > CONFIG_FILE_MAX) {
		ret = n < 0 ? -errno : -EFBIG;
		snprintf(err, errlen, "%s: %s", path, n < 0 ? strerror(errno) : "file too large");
		goto out;
	}
	text[len] = '\0';
	ret = config_parse(c, path, text, err, errlen);
out:
	free(text);
	close(fd);
	return ret;
}

int config_check(const struct config *c, const char **why)
{
	if (*c->password_file && *c->password_credential) {
		*why = "password.file and password.credential exclude each other";
		return -EINVAL;
	}
	if (c->import_max_size > c->import_max_total) {
		*why = "import.max_size is larger than import.max_total";
		return -EINVAL;
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
