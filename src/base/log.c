/* Logging: one log_msg() with syslog levels, to stderr in the foreground
 * and syslog otherwise, every control byte escaped. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "keyfs/escape.h"
#include "keyfs/log.h"

/* A message's length before its bytes are escaped ("\xNN" at most). */
#define MSG_MAX 1024

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

/* One write() per line, so lines of concurrent threads never mix, and no
 * stdio: stderr's lock is held across the write, and the seal workers,
 * each logging every keyset it seals, spent more in futex calls waiting
 * for it than in the writes. */
static void write_line(const char *level, const char *text)
{
	char buf[4 * MSG_MAX + 64]; /* ident and level names are short */
	size_t len, off = 0;
	ssize_t n;
	int w;

	w = snprintf(buf, sizeof(buf), "%s: %s: %s\n", log_ident, level, text);
	if (w < 0)
		return;
	len = (size_t)w < sizeof(buf) ? (size_t)w : sizeof(buf) - 1;
	buf[len - 1] = '\n'; /* a line cut short still ends */
	while (off < len) {
		n = write(STDERR_FILENO, buf + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		off += (size_t)n;
	}
}

void log_msg(int level, const char *fmt, ...)
{
	static const char *const names[] = {
		"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
	};
	int saved = errno; /* so callers may use %m after other calls */
	char line[MSG_MAX], safe[4 * MSG_MAX];
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
	if (log_foreground)
		write_line(names[level & 7], safe);
	else
		syslog(level, "%s", safe);
	errno = saved;
}
