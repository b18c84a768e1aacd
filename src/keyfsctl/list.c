/* keyfsctl list [--json]: every keyset, from MNT/.keysets (report.c's
 * report_list()). As it is, tab-separated under its heading line, for
 * cut and awk; with --json, an array of objects named by the heading's
 * fields, "-" as null and the inactive versions as an array of numbers.
 * The text is read and written as it comes, a line at a time: at a
 * hundred thousand keysets it is tens of megabytes. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "list.h"

#define FIELDS_MAX 32

/* s as a JSON string; the daemon escaped it already (printable UTF-8,
 * C escapes), so only the backslash and the quote need more. */
static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			putchar('\\');
		putchar(*s);
	}
	putchar('"');
}

/* The inactive versions "1,3" as [1, 3]. */
static void json_versions(const char *s)
{
	bool first = true;
	char *end;
	long v;

	putchar('[');
	while (*s) {
		v = strtol(s, &end, 10);
		if (end == s)
			break;
		printf("%s%ld", first ? "" : ", ", v);
		first = false;
		s = *end == ',' ? end + 1 : end;
	}
	putchar(']');
}

/* Splits line (its newline gone) on tabs into at most FIELDS_MAX fields. */
static size_t split(char *line, char *field[static FIELDS_MAX])
{
	size_t n = 0;
	char *save, *tok;

	for (tok = strtok_r(line, "\t", &save); tok && n < FIELDS_MAX;
	     tok = strtok_r(NULL, "\t", &save))
		field[n++] = tok;
	return n;
}

static void json_line(char *line, char *const names[], size_t nnames, bool first)
{
	char *field[FIELDS_MAX];
	size_t n, k;

	n = split(line, field);
	printf("%s\n  {", first ? "" : ",");
	for (k = 0; k < n && k < nnames; k++) {
		printf("%s", k ? ", " : "");
		json_str(names[k]);
		printf(": ");
		if (!strcmp(field[k], "-"))
			printf("%s", strcmp(names[k], "inactive_versions") ? "null" : "[]");
		else if (!strcmp(names[k], "inactive_versions"))
			json_versions(field[k]);
		else
			json_str(field[k]);
	}
	putchar('}');
}

int list_main(const char *mount, int argc, char **argv)
{
	char path[4096], *line = NULL, *head = NULL, *names[FIELDS_MAX];
	size_t cap = 0, nnames = 0, rows = 0;
	bool json = false;
	ssize_t len;
	FILE *f;
	int ret = 0;

	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json"))) {
		fprintf(stderr, "usage: keyfsctl [-m MOUNTPOINT] list [--json]\n");
		return 2;
	}
	json = argc == 2;
	snprintf(path, sizeof(path), "%s/.keysets", mount);
	f = fopen(path, "re");
	if (!f) {
		fprintf(stderr, "keyfsctl: %s: %s\n", path, strerror(errno));
		return 1;
	}
	while ((len = getline(&line, &cap, f)) > 0) {
		if (!json) {
			fwrite(line, 1, (size_t)len, stdout);
			continue;
		}
		line[strcspn(line, "\n")] = '\0';
		if (!head) {
			/* "# keyset\tstate\t...": the names of the fields */
			head = strdup(line + strspn(line, "# "));
			if (!head) {
				ret = 1;
				break;
			}
			nnames = split(head, names);
			printf("[");
			continue;
		}
		json_line(line, names, nnames, rows++ == 0);
	}
	if (ferror(f)) {
		fprintf(stderr, "keyfsctl: %s: %s\n", path, strerror(errno));
		ret = 1;
	}
	if (json && head)
		printf("%s]\n", rows ? "\n" : "");
	free(head);
	free(line);
	fclose(f);
	return ret || fflush(stdout) ? 1 : 0;
}
