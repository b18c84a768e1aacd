/* Reading INI files (inifile.h). */
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inifile.h"

/* inih's handler is not told the line (Debian builds it without
 * INI_HANDLER_LINENO), so the reader counts lines for it, handing inih
 * exactly one line per call so that both counts agree. */
struct parse_state {
	inifile_fn fn;
	void *arg;
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
	const char *why = NULL;
	int ret;

	ret = st->fn(st->arg, section, key, value, st->line, &why);
	if (ret && !st->err_line) {
		snprintf(st->why, sizeof(st->why), "%s.%s: %s", section, key,
			 why ? why : strerror(-ret));
		st->err_line = st->line;
	}
	return !ret;
}

int inifile_parse(const char *name, const char *text, inifile_fn fn, void *arg, char *err,
		  size_t errlen)
{
	struct parse_state st = { .fn = fn, .arg = arg, .next = text };
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

int inifile_read(const char *path, char **text, char *err, size_t errlen)
{
	size_t len = 0;
	ssize_t n;
	int fd, ret = 0;

	*text = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	*text = malloc(INIFILE_MAX + 1);
	if (!*text) {
		ret = -ENOMEM;
		snprintf(err, errlen, "%s: %s", path, strerror(ENOMEM));
		goto out;
	}
	while ((n = read(fd, *text + len, INIFILE_MAX + 1 - len)) > 0)
		len += (size_t)n;
	if (n < 0 || len > INIFILE_MAX) {
		ret = n < 0 ? -errno : -EFBIG;
		snprintf(err, errlen, "%s: %s", path, n < 0 ? strerror(errno) : "file too large");
		free(*text);
		*text = NULL;
		goto out;
	}
	(*text)[len] = '\0';
out:
	close(fd);
	return ret;
}
