/* Prometheus text exposition format (see metrics.h). */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/escape.h"
#include "keyfs/metrics.h"

void metrics_histogram_init(struct histogram *h, const double *bounds, size_t nbounds)
{
	memset(h, 0, sizeof(*h));
	h->bounds = bounds;
	h->nbounds = nbounds < METRICS_BUCKETS_MAX ? nbounds : METRICS_BUCKETS_MAX;
}

void metrics_histogram_observe(struct histogram *h, double value)
{
	size_t i;

	for (i = 0; i < h->nbounds; i++)
		if (value <= h->bounds[i]) {
			h->buckets[i]++;
			break;
		}
	/* above every bound: counted in +Inf only, which is count */
	h->count++;
	h->sum += value;
}

void metrics_family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The format's escapes over escape.h's: the value keeps no control byte
 * and stays UTF-8, as the format requires, and reads back (after the
 * format's own unescaping) as the text the status report shows. */
void metrics_escape(FILE *f, const char *value)
{
	char small[1024], *shown = small, *p;
	size_t size = 4 * strlen(value) + 1; /* "\xNN" per byte at most */

	if (size <= sizeof(small))
		size = sizeof(small);
	else if (!(shown = malloc(size))) {
		fputs("(out of memory)", f);
		return;
	}
	escape_str(shown, size, value, 0);
	for (p = shown; *p; p++) {
		if (*p == '\\' || *p == '"')
			fputc('\\', f);
		fputc(*p, f);
	}
	if (shown != small)
		free(shown);
}

/* Integers (timestamps, counts) exactly, with no exponent; the rest with
 * enough digits to read back the same double. */
static void value_out(FILE *f, double v)
{
	if (v != v)
		fputs("NaN", f);
	else if (v > DBL_MAX || v < -DBL_MAX)
		fputs(v > 0 ? "+Inf" : "-Inf", f);
	else if (v > -1e15 && v < 1e15 && (double)(long long)v == v)
		fprintf(f, "%lld", (long long)v);
	else
		fprintf(f, "%.17g", v);
}

void metrics_sample(FILE *f, const char *name, const char *const *labels, double value)
{
	size_t i;

	fputs(name, f);
	if (labels && labels[0]) {
		fputc('{', f);
		for (i = 0; labels[i]; i += 2) {
			fprintf(f, "%s%s=\"", i ? "," : "", labels[i]);
			metrics_escape(f, labels[i + 1]);
			fputc('"', f);
		}
		fputc('}', f);
	}
	fputc(' ', f);
	value_out(f, value);
	fputc('\n', f);
}

void metrics_histogram(FILE *f, const char *name, const char *help, const struct histogram *h)
{
	char bucket[128], le[32];
	uint64_t cum = 0;
	size_t i;

	metrics_family(f, name, "histogram", help);
	snprintf(bucket, sizeof(bucket), "%s_bucket", name);
	for (i = 0; i < h->nbounds; i++) {
		cum += h->buckets[i];
		snprintf(le, sizeof(le), "%g", h->bounds[i]);
		metrics_sample(f, bucket, (const char *const[]){ "le", le, NULL }, (double)cum);
	}
	metrics_sample(f, bucket, (const char *const[]){ "le", "+Inf", NULL }, (double)h->count);
	snprintf(bucket, sizeof(bucket), "%s_sum", name);
	metrics_sample(f, bucket, NULL, h->sum);
	snprintf(bucket, sizeof(bucket), "%s_count", name);
	metrics_sample(f, bucket, NULL, (double)h->count);
}
