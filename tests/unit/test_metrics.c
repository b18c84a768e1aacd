/* Unit tests for metrics.c: the Prometheus text format, label escaping,
 * number formatting and histograms (cumulative buckets, +Inf, sum,
 * count). promtool checks whole files in the integration tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/metrics.h"

#include "tap.h"

/* Runs fn into a memory stream; returns the malloc()ed text. */
static char *render(void (*fn)(FILE *f, void *arg), void *arg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	fn(f, arg);
	fclose(f);
	return text;
}

static void one_label(FILE *f, void *arg)
{
	metrics_sample(f, "keyfs_keyset_backup_timestamp_seconds",
		       (const char *const[]){ "keyset", arg, NULL }, 1764360000);
}

static void check_escape(const char *value, const char *want)
{
	char *got = render(one_label, (void *)value);

	if (!tap_ok(got && !strcmp(got, want), "label value escaped as the format requires"))
		printf("# want %s# got  %s", want, got ? got : "(null)\n");
	free(got);
}

static void test_escaping(void)
{
	check_escape("sm", "keyfs_keyset_backup_timestamp_seconds{keyset=\"sm\"} 1764360000\n");
	check_escape("a\"b", "keyfs_keyset_backup_timestamp_seconds{keyset=\"a\\\"b\"} 1764360000\n");
	/* escape.h's escapes first (the status report's), then the format's
	 * over them: a backslash is four, a line feed reads back as "\n" */
	check_escape("a\\b", "keyfs_keyset_backup_timestamp_seconds{keyset=\"a\\\\\\\\b\"} 1764360000\n");
	check_escape("a\nb", "keyfs_keyset_backup_timestamp_seconds{keyset=\"a\\\\nb\"} 1764360000\n");
	check_escape("a\x1b[2J", "keyfs_keyset_backup_timestamp_seconds{keyset=\"a\\\\x1b[2J\"} "
		     "1764360000\n");
	/* everything else, UTF-8 and spaces too, goes as it is */
	check_escape("k\xc3\xa9y set", "keyfs_keyset_backup_timestamp_seconds{keyset=\"k\xc3\xa9y set\"} "
		     "1764360000\n");
}

static void values(FILE *f, void *arg)
{
	(void)arg;
	metrics_sample(f, "a", NULL, 0);
	metrics_sample(f, "b", NULL, 0.25);
	metrics_sample(f, "c", (const char *const[]){ "x", "1", "y", "2", NULL }, 3);
	metrics_sample(f, "d", (const char *const[]){ NULL }, 1e300 * 1e300);
}

static void test_values(void)
{
	char *got = render(values, NULL);

	tap_ok(got && !strcmp(got, "a 0\nb 0.25\nc{x=\"1\",y=\"2\"} 3\nd +Inf\n"),
	       "numbers, several labels, no labels");
	free(got);
}

static void family(FILE *f, void *arg)
{
	(void)arg;
	metrics_family(f, "keyfs_locked", "gauge", "1 if locked.");
}

static void test_family(void)
{
	char *got = render(family, NULL);

	tap_ok(got && !strcmp(got, "# HELP keyfs_locked 1 if locked.\n# TYPE keyfs_locked gauge\n"),
	       "HELP and TYPE lines");
	free(got);
}

static void histo(FILE *f, void *arg)
{
	metrics_histogram(f, "keyfs_seal_duration_seconds", "Seal time.", arg);
}

static void test_histogram(void)
{
	static const double bounds[] = { 0.1, 1, 10 };
	struct histogram h;
	char *got;

	metrics_histogram_init(&h, bounds, 3);
	got = render(histo, &h);
	tap_ok(got && strstr(got, "keyfs_seal_duration_seconds_bucket{le=\"+Inf\"} 0\n") &&
	       strstr(got, "keyfs_seal_duration_seconds_count 0\n"), "an empty histogram");
	free(got);
	metrics_histogram_observe(&h, 0.05);
	metrics_histogram_observe(&h, 0.1);	/* le is inclusive */
	metrics_histogram_observe(&h, 0.5);
	metrics_histogram_observe(&h, 100);	/* above every bound: +Inf only */
	got = render(histo, &h);
	tap_ok(got && !strcmp(got,
		"# HELP keyfs_seal_duration_seconds Seal time.\n"
		"# TYPE keyfs_seal_duration_seconds histogram\n"
		"keyfs_seal_duration_seconds_bucket{le=\"0.1\"} 2\n"
		"keyfs_seal_duration_seconds_bucket{le=\"1\"} 3\n"
		"keyfs_seal_duration_seconds_bucket{le=\"10\"} 3\n"
		"keyfs_seal_duration_seconds_bucket{le=\"+Inf\"} 4\n"
		"keyfs_seal_duration_seconds_sum 100.65000000000001\n"
		"keyfs_seal_duration_seconds_count 4\n"), "cumulative buckets, sum, count");
	free(got);
	TAP_EQ_INT(h.count, 4, "count");
}

int main(void)
{
	test_escaping();
	test_values();
	test_family();
	test_histogram();
	return tap_done();
}
