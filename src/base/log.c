/* Logging: one log_msg() with syslog levels, to stderr in the foreground
 * and syslog otherwise, every control byte escaped. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "keyfs/escape.h"
#include "keyfs/log.h"

static bool log_foreground = true;
static bool log_debug;
static const char *log_ident = "keyfs";

void log_init(const char *ident, bool foreground, bool debug)
{
	log_ident = ident;
	log_foreground = foreground;
	log_debug = debug;
	if (!foreground)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_msg(int level, const char *fmt, ...)
{
	static const char *const names[] = {
		"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
	};
	int saved = errno; /* so callers may use %m after other calls */
	char line[1024], safe[4 * sizeof(line)]; /* "\xNN" per byte at most */
	va_list ap;

	if (level == LOG_DEBUG && !log_debug)
		return;
	va_start(ap, fmt);
	errno = saved;
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* Names in log lines come from keyset writers and archives: a
	 * newline would forge a log line and an escape sequence would drive
	 * the terminal that shows the log. */
	escape_str(safe, sizeof(safe), line, ESCAPE_HEX);
	/* one write per line so lines of concurrent threads never mix */
	if (log_foreground)
		fprintf(stderr, "%s: %s: %s\n", log_ident, names[level & 7], safe);
	else
		syslog(level, "%s", safe);
	errno = saved;
}
