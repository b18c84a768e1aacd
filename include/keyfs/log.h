/* One logging call for the daemon: stderr in the foreground, syslog
 * otherwise. Messages never carry a secret; callers name the thing
 * (keyset, command), never the value. */
#ifndef KEYFS_LOG_H
#define KEYFS_LOG_H

#include <stdbool.h>
#include <syslog.h>

void log_init(const char *ident, bool foreground, bool debug);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
