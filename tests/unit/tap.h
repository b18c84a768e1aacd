/* Minimal TAP output for the unit tests (meson reads it with protocol: tap). */
#ifndef KEYFS_TAP_H
#define KEYFS_TAP_H

#include <stdbool.h>

/* Report one check; returns ok so callers can chain diagnostics. */
bool tap_ok(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print the plan and return the exit code (0 if every check passed). */
int tap_done(void);
/* Removes a test's temporary directory tree; 0, or -1 if some of it
 * stayed. */
int tap_rmtree(const char *path);

#define TAP_EQ_INT(a, b, ...) tap_ok((long long)(a) == (long long)(b), __VA_ARGS__)

#endif
