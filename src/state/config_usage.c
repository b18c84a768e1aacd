/* The -o options and keyfs --help, both from the key table (config.h):
 * a row with an alias is an option, and its help line says what the row
 * says, so the two cannot disagree. */
#include <stdio.h>
#include <string.h>

#include "keyfs/config.h"

const struct config_key *config_option(const char *opt)
{
	const struct config_key *k;
	size_t n;

	for (k = config_keys; k->name; k++) {
		if (!k->alias)
			continue;
		n = strlen(k->alias);
		if (!strncmp(opt, k->alias, n) && opt[n] == '=')
			return k;
	}
	return NULL;
}

/* The value's placeholder in --help, from the row's type. */
static const char *placeholder(const struct config_key *k)
{
	switch (k->type) {
	case CONFIG_TEXT:
		return "TEXT";
	case CONFIG_PATH:
		return "PATH";
	case CONFIG_NAME:
		return "NAME";
	case CONFIG_INT:
		return "N";
	case CONFIG_SIZE:
		return "BYTES";
	case CONFIG_BOOL:
		return "yes|no";
	case CONFIG_CHOICE:
		return "WORD";
	}
	return "VALUE";
}

#define USAGE_COLUMN 31	/* where the help of an option begins */
#define USAGE_WIDTH 79

/* Writes text word by word from column col, going on at USAGE_COLUMN on
 * the next line where a word would pass USAGE_WIDTH; returns the column. */
static size_t usage_words(FILE *f, const char *text, size_t col)
{
	const char *p = text;
	size_t n;

	while (*p) {
		n = strcspn(p, " ");
		if (col > USAGE_COLUMN && col + 1 + n > USAGE_WIDTH) {
			fprintf(f, "\n%*s", USAGE_COLUMN, "");
			col = USAGE_COLUMN;
		} else if (col > USAGE_COLUMN) {
			fputc(' ', f);
			col++;
		}
		fprintf(f, "%.*s", (int)n, p);
		col += n;
		p += n;
		p += strspn(p, " ");
	}
	return col;
}

void config_usage(FILE *f)
{
	const struct config_key *k;
	char limits[256];
	size_t col, n, i;
	int len;

	for (k = config_keys; k->name; k++) {
		if (!k->alias)
			continue;
		len = fprintf(f, "  -o %s=%s", k->alias, placeholder(k));
		col = len > 0 ? (size_t)len : 0;
		if (col + 2 > USAGE_COLUMN) {
			fprintf(f, "\n");
			col = 0;
		}
		fprintf(f, "%*s", (int)(USAGE_COLUMN - col), "");
		/* The limits and the default, in parentheses after the help. */
		n = 0;
		limits[0] = '\0';
		if (k->type == CONFIG_INT || k->type == CONFIG_SIZE)
			n = (size_t)snprintf(limits, sizeof(limits), "%lld..%lld", k->min, k->max);
		for (i = 0; k->type == CONFIG_CHOICE && k->choices[i] && n < sizeof(limits); i++)
			n += (size_t)snprintf(limits + n, sizeof(limits) - n, "%s%s",
					      !i ? "" : k->choices[i + 1] ? ", " : " or ",
					      k->choices[i]);
		if (k->def && n < sizeof(limits))
			n += (size_t)snprintf(limits + n, sizeof(limits) - n, "%sdefault %s",
					      n ? ", " : "", k->def);
		col = usage_words(f, k->help, USAGE_COLUMN);
		if (n) {
			char paren[sizeof(limits) + 2];

			snprintf(paren, sizeof(paren), "(%s)", limits);
			usage_words(f, paren, col);
		}
		fprintf(f, "\n");
	}
}
