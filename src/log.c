#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

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
	va_list ap;

	if (level == LOG_DEBUG && !log_debug)
		return;
	va_start(ap, fmt);
	if (log_foreground) {
		char line[1024];

		errno = saved;
		vsnprintf(line, sizeof(line), fmt, ap);
		/* one fputs per line so lines of concurrent threads never mix */
		fprintf(stderr, "%s: %s: %s\n", log_ident, names[level & 7], line);
	} else {
		errno = saved;
		vsyslog(level, fmt, ap);
	}
	va_end(ap);
	errno = saved;
}
