/* keyfsctl discover's output: the locations, the sections for those not
 * covered, the metrics textfile, and its part in keyfsctl check
 * (discover.h). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include "keyfs/escape.h"
#include "keyfs/keyset.h"
#include "keyfs/metrics.h"
#include "keyfs/replace.h"

#include "discover.h"

#define PATHS_SHOWN 5		/* uncovered paths in check's line, then "and N more" */

static const char *const status_words[] = { "OK", "WARNING", "CRITICAL", "UNKNOWN" };

static void print_location(const struct discovery *d, const struct location *l)
{
	char shown[PATH_MAX];

	escape_str(shown, sizeof(shown), discover_shown(d, l), 0);
	printf("%-18s %-36s %3zu key file%s  ", l->preset->ks.name, shown, l->keys,
	       l->keys == 1 ? " " : "s");
	if (!l->uncovered)
		printf("covered by %s\n", l->covered_by);
	else if (*l->covered_by)
		printf("NOT COVERED (%zu not; the others by %s)\n", l->uncovered, l->covered_by);
	else
		printf("NOT COVERED\n");
}

static bool name_taken(const struct discovery *d, char (*used)[KEYSET_NAME_MAX + 1], size_t n,
		       const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(used[i], name))
			return true;
	return config_keyset(&d->cfg, name) != NULL;
}

/* A keyset name for l, none of the configuration's or of used: the
 * preset's, with the device's file name for a device, made unique. */
static void section_name(const struct discovery *d, const struct location *l,
			 char (*used)[KEYSET_NAME_MAX + 1], size_t n, char *name)
{
	/* room for "-N" after it */
	char base[KEYSET_NAME_MAX - 7];
	const char *slash = strrchr(l->path, '/');
	unsigned i;
	char *c;
	int len;

	if (l->target && *l->preset->devices)
		len = snprintf(base, sizeof(base), "%s-%s", l->preset->ks.name,
			       slash ? slash + 1 : l->path);
	else
		len = snprintf(base, sizeof(base), "%s", l->preset->ks.name);
	if (len < 0)
		base[0] = '\0';
	for (c = base; *c; c++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *c))
			*c = '-';
	len = snprintf(name, KEYSET_NAME_MAX + 1, "%s", base);
	for (i = 2; len < 0 || name_taken(d, used, n, name) || !keyset_name_valid(name); i++)
		len = snprintf(name, KEYSET_NAME_MAX + 1, "%s-%u", base, i);
}

/* [keyset NAME] sections for the locations not covered, as they work:
 * with the root in their paths. */
static int print_config(const struct discovery *d)
{
	char (*used)[KEYSET_NAME_MAX + 1] = calloc(d->n + 1, sizeof(*used));
	size_t i, n = 0;

	if (!used)
		return -ENOMEM;
	for (i = 0; i < d->n; i++) {
		const struct location *l = &d->v[i];
		const struct preset *p = l->preset;

		if (!l->uncovered)
			continue;
		section_name(d, l, used, n, used[n]);
		printf("\n; %s: %zu key file%s in %s (keyfsctl discover)\n[keyset %s]\npreset = %s\n",
		       p->description, l->keys, l->keys == 1 ? "" : "s", discover_shown(d, l),
		       used[n], p->ks.name);
		if (*p->devices || (l->target && *d->root))
			printf("target = %s\n", l->path);
		else if (*d->root)
			printf("path = %s\n", l->path);
		n++;
	}
	free(used);
	return 0;
}

/* The findings as a Prometheus textfile, replaced atomically. */
static int write_metrics(const struct discovery *d, const char *path)
{
	const char *labels[] = { "preset", NULL, "path", NULL, NULL };
	struct iovec iov;
	char *text = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&text, &len);
	int ret;

	if (!f)
		return -ENOMEM;
	metrics_family(f, "keyfs_discover_locations", "gauge",
		       "Key locations of the preset catalog found on this host.");
	metrics_sample(f, "keyfs_discover_locations", NULL, (double)d->n);
	metrics_family(f, "keyfs_discover_uncovered_locations", "gauge",
		       "Key locations with key files that no configured keyset covers.");
	metrics_sample(f, "keyfs_discover_uncovered_locations", NULL, (double)d->uncovered);
	metrics_family(f, "keyfs_discover_location_key_files", "gauge",
		       "Key files found in a location.");
	for (i = 0; i < d->n; i++) {
		labels[1] = d->v[i].preset->ks.name;
		labels[3] = discover_shown(d, &d->v[i]);
		metrics_sample(f, "keyfs_discover_location_key_files", labels, (double)d->v[i].keys);
	}
	metrics_family(f, "keyfs_discover_location_covered", "gauge",
		       "1 if configured keysets cover every key file of a location, else 0.");
	for (i = 0; i < d->n; i++) {
		labels[1] = d->v[i].preset->ks.name;
		labels[3] = discover_shown(d, &d->v[i]);
		metrics_sample(f, "keyfs_discover_location_covered", labels, d->v[i].uncovered ? 0 : 1);
	}
	metrics_family(f, "keyfs_discover_timestamp_seconds", "gauge",
		       "When keyfsctl discover last looked, in seconds since the epoch.");
	metrics_sample(f, "keyfs_discover_timestamp_seconds", NULL, (double)time(NULL));
	if (fclose(f))
		return -ENOMEM;
	iov = (struct iovec){ text, len };
	ret = replace_file_mode(AT_FDCWD, path, 0644, &iov, 1);
	free(text);
	return ret;
}

static void discover_usage(FILE *f)
{
	fprintf(f, "usage: keyfsctl discover [--root DIR] [-c CONFIG] [--print-config] "
		   "[--metrics FILE]\n"
		   "exit status: 0 every key location found is covered, 1 some are not, "
		   "2 trouble\n");
}

int discover_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "config", required_argument, NULL, 'c' },
		{ "print-config", no_argument, NULL, 'p' },
		{ "metrics", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *root = NULL, *config = NULL, *metrics = NULL;
	struct discovery d;
	bool print = false;
	char err[PATH_MAX + 256];
	size_t i;
	int c, ret;

	optind = 0;
	while ((c = getopt_long(argc, argv, "r:c:h", longopts, NULL)) != -1) {
		if (c == 'r')
			root = optarg;
		else if (c == 'c')
			config = optarg;
		else if (c == 'p')
			print = true;
		else if (c == 'M')
			metrics = optarg;
		else if (c == 'h') {
			discover_usage(stdout);
			return 0;
		} else {
			discover_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		discover_usage(stderr);
		return 2;
	}
	ret = discover_run(&d, root, config, err, sizeof(err));
	if (!ret && metrics && (ret = write_metrics(&d, metrics)))
		snprintf(err, sizeof(err), "%s: %s", metrics, strerror(-ret));
	for (i = 0; !ret && !print && i < d.n; i++)
		print_location(&d, &d.v[i]);
	/* silence would read as "it did not look" */
	if (!ret && !d.n)
		fprintf(stderr, "keyfsctl: discover: no key found in the %zu places of the catalog\n",
			d.cat.n);
	if (!ret && print && (ret = print_config(&d)))
		snprintf(err, sizeof(err), "%s", strerror(-ret));
	if (ret) {
		fputs("keyfsctl: discover: ", stderr);
		escape_put(stderr, err);
		fputc('\n', stderr);
	}
	c = ret ? 2 : d.uncovered ? 1 : 0;
	discover_free(&d);
	return c;
}

/* Appends the discovery's words to out's text, its perfdata to out's. */
static void merge(char *out, size_t size, enum check_status s, const char *words,
		  const char *perf)
{
	char *text = malloc(size), *bar, *dash;

	if (!text)
		return;
	snprintf(text, size, "%s", out);
	text[strcspn(text, "\n")] = '\0';
	bar = strstr(text, " | ");
	if (bar)
		*bar = '\0';
	dash = strstr(text, " - ");
	snprintf(out, size, "KEYFS %s - %s%s%s | %s%s%s\n", status_words[s], dash ? dash + 3 : "",
		 dash && dash[3] ? "; " : "", words, bar ? bar + 3 : "", bar ? " " : "", perf);
	free(text);
}

enum check_status discover_check(const char *root, const char *config, enum check_status s,
				 char *out, size_t size)
{
	char err[PATH_MAX + 256], words[1024], perf[64], shown[256];
	enum check_status mine = CHECK_OK;
	struct discovery d;
	size_t i, n = 0, len;

	if (discover_run(&d, root, config, err, sizeof(err))) {
		mine = CHECK_UNKNOWN;
		len = (size_t)snprintf(words, sizeof(words), "discover: ");
		escape_str(words + len, sizeof(words) - len, err, 0);
	} else if (d.uncovered) {
		mine = CHECK_WARNING;
		len = (size_t)snprintf(words, sizeof(words), "key location(s) not backed up by any "
				       "keyset:");
		for (i = 0; i < d.n; i++) {
			if (!d.v[i].uncovered || n++ >= PATHS_SHOWN)
				continue;
			escape_str(shown, sizeof(shown), discover_shown(&d, &d.v[i]), 0);
			len += (size_t)snprintf(words + len, len < sizeof(words) ? sizeof(words) - len : 0,
						"%s %s (%s)", n > 1 ? "," : "", shown,
						d.v[i].preset->ks.name);
		}
		if (n > PATHS_SHOWN && len < sizeof(words))
			snprintf(words + len, sizeof(words) - len, " and %zu more", n - PATHS_SHOWN);
	} else {
		snprintf(words, sizeof(words), "%zu key location(s), all covered", d.n);
	}
	snprintf(perf, sizeof(perf), "uncovered_locations=%zu", mine == CHECK_UNKNOWN ? 0 : d.uncovered);
	discover_free(&d);
	/* the worse of the two; a critical mount stays critical */
	if (s != CHECK_CRITICAL && mine > s)
		s = mine;
	merge(out, size, s, words, perf);
	return s;
}
