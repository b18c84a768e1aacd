/* Escaping for every text keyfs shows: the status report, README.txt,
 * the metrics, `keyfsctl check` and the log. Names, reasons, hints,
 * paths and command output reach them from file names, archives and
 * configuration; a line feed in one would forge a line of the report, and
 * an ESC would drive the terminal that shows it. What leaves here has no
 * control byte and is valid UTF-8.
 *
 * The escapes are C's: "\\" for a backslash, "\n", "\r" and "\t", and
 * "\xNN" (lower-case hex) for every other byte that cannot go as it is:
 *   - control bytes 0x00-0x1f and DEL;
 *   - bytes >= 0x80 that are not part of valid, shortest-form UTF-8 (a
 *     lone 0x9b is CSI to a terminal in an 8-bit mode; Prometheus and
 *     most readers of these texts require UTF-8);
 *   - the UTF-8 of characters that act as controls: C1 controls
 *     (U+0080-U+009F, CSI among them), the line and paragraph separators
 *     (U+2028, U+2029) and the bidirectional marks, embeddings, overrides
 *     and isolates (U+200E, U+200F, U+202A-U+202E, U+2066-U+2069), which
 *     reorder what a screen shows so a name could read as another.
 * Other UTF-8 (accented and non-Latin names) stays readable as it is.
 * Every escape reads back to the bytes it stands for. */
#ifndef KEYFS_ESCAPE_H
#define KEYFS_ESCAPE_H

#include <stddef.h>
#include <stdio.h>

/* Line feeds, carriage returns and tabs as "\xNN" too: the log's format
 * since its first release, which its readers search for. */
#define ESCAPE_HEX 1u

/* The longest escape of one character: four bytes as "\xNN". */
#define ESCAPE_UNIT_MAX 16

/* in escaped into out (size bytes, at least 1), NUL terminated; cut
 * before an escape that does not fit, never inside one. Returns the
 * length written. */
size_t escape_str(char *out, size_t size, const char *in, unsigned flags);

/* Writes in to f escaped (no flags). Runs that need no escaping go in one
 * fwrite(), so a name without anything to escape costs one call. */
void escape_put(FILE *f, const char *in);

#endif
