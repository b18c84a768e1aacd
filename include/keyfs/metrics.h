/* The Prometheus text exposition format (0.0.4), as node_exporter's
 * textfile collector and promtool read it: HELP and TYPE lines, samples
 * with escaped label values, and histograms. Formatting only: what the
 * numbers mean is the caller's. */
#ifndef KEYFS_METRICS_H
#define KEYFS_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define METRICS_BUCKETS_MAX 16

/* Observations counted into buckets with the given upper bounds
 * (ascending, at most METRICS_BUCKETS_MAX; "+Inf" is implicit). Not
 * locked: the owner serializes observations and rendering. */
struct histogram {
	const double *bounds;
	size_t nbounds;
	uint64_t buckets[METRICS_BUCKETS_MAX];	/* per bucket, not cumulative */
	uint64_t count;
	double sum;
};

void metrics_histogram_init(struct histogram *h, const double *bounds, size_t nbounds);
void metrics_histogram_observe(struct histogram *h, double value);

/* "# HELP name help" and "# TYPE name type" (gauge, counter, histogram). */
void metrics_family(FILE *f, const char *name, const char *type, const char *help);

/* One sample: name{l1="v1",...} value. labels holds name, value pairs and
 * ends with NULL (labels itself may be NULL); values are escaped as the
 * format requires (backslash, double quote, line feed). */
void metrics_sample(FILE *f, const char *name, const char *const *labels, double value);

/* Writes a label value escaped: first as every text keyfs shows
 * (escape.h: no control byte, valid UTF-8), then \ as \\ and " as \" as
 * the exposition format requires. */
void metrics_escape(FILE *f, const char *value);

/* A histogram's _bucket (cumulative, le="+Inf" last), _sum and _count
 * samples, after its family lines. */
void metrics_histogram(FILE *f, const char *name, const char *help, const struct histogram *h);

#endif
