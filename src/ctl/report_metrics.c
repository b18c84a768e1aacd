/* The metrics report: Prometheus text (metrics.h) of backup freshness
 * (fresh.h), locking, sealing and imports. It is what MNT/.metrics
 * reads, what metrics.file holds and what `keyfsctl check` decides from,
 * so the totals alone (metrics.per_keyset = no) must be enough to decide.
 * Names, fingerprints and times only: never a secret. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/control.h"
#include "keyfs/fresh.h"
#include "keyfs/metrics.h"
#include "keyfs/store_command.h"
#include "keyfs/store_live.h"
#include "keyfs/textbuf.h"

/* Backup states of the metrics: fresh.h's, and keysets that cannot be
 * exported (or read) at all, which no backup holds either. */
enum { ST_NEVER = FRESH_NEVER, ST_CHANGED = FRESH_CHANGED, ST_BACKED_UP = FRESH_BACKED_UP,
       ST_UNEXPORTABLE, ST_COUNT };

static const char *const state_names[ST_COUNT] = {
	[ST_NEVER] = "never", [ST_CHANGED] = "changed", [ST_BACKED_UP] = "backed_up",
	[ST_UNEXPORTABLE] = "unexportable",
};

struct row {
	const char *name;
	int state;
	struct fresh_info i;
};

struct totals {
	size_t n[ST_COUNT];
	size_t locked[2];	/* by ST_NEVER, ST_CHANGED: pending with no key */
	time_t oldest[2];	/* oldest changed_at by ST_NEVER, ST_CHANGED; 0: none */
	size_t seal_failed;
};

static void assess(struct ctl *c, const char *name, struct row *r, struct totals *t)
{
	struct export_attr a;

	r->name = name;
	memset(&r->i, 0, sizeof(r->i));
	/* observes the export's current version into the records */
	if (sealcache_attr(c->sc, name, &a) || fresh_get(c->fresh, name, &r->i)) {
		r->state = ST_UNEXPORTABLE;
		t->n[ST_UNEXPORTABLE]++;
		return;
	}
	r->state = (int)fresh_state_of(&r->i);
	t->n[r->state]++;
	if (r->i.seal_error)
		t->seal_failed++;
	if (r->state == ST_BACKED_UP)
		return;
	if (r->i.locked)
		t->locked[r->state]++;
	if (!t->oldest[r->state] || r->i.changed_at < t->oldest[r->state])
		t->oldest[r->state] = r->i.changed_at;
}

static void per_state(FILE *f, const char *name, const size_t *n, const time_t *at, size_t count)
{
	char buf[32];
	size_t s;

	for (s = 0; s < count; s++) {
		if (at && !at[s])
			continue;
		snprintf(buf, sizeof(buf), "%s", state_names[s]);
		metrics_sample(f, name, (const char *const[]){ "state", buf, NULL },
			       at ? (double)at[s] : (double)n[s]);
	}
}

static void totals_out(FILE *f, struct ctl *c, const struct totals *t)
{
	size_t workers, pending;

	metrics_family(f, "keyfs_keysets", "gauge",
		       "Keysets by backup state: backed_up (the current export was read to the end), "
		       "changed (an older one was), never, unexportable.");
	per_state(f, "keyfs_keysets", t->n, NULL, ST_COUNT);
	metrics_family(f, "keyfs_keysets_oldest_change_timestamp_seconds", "gauge",
		       "When the oldest change not backed up appeared, by state (changed, never).");
	per_state(f, "keyfs_keysets_oldest_change_timestamp_seconds", NULL, t->oldest, 2);
	metrics_family(f, "keyfs_keysets_locked", "gauge",
		       "Keysets not backed up that cannot be sealed: no password for them.");
	per_state(f, "keyfs_keysets_locked", t->locked, NULL, 2);
	metrics_family(f, "keyfs_keysets_seal_failed", "gauge",
		       "Keysets whose last seal failed.");
	metrics_sample(f, "keyfs_keysets_seal_failed", NULL, (double)t->seal_failed);
	metrics_family(f, "keyfs_locked", "gauge",
		       "1 if no backup password is set: exports cannot be sealed.");
	metrics_sample(f, "keyfs_locked", NULL, vault_has_password(c->v) ? 0 : 1);
	sealcache_progress(c->sc, &workers, &pending);
	metrics_family(f, "keyfs_seal_queue", "gauge", "Keysets queued for sealing or being sealed.");
	metrics_sample(f, "keyfs_seal_queue", NULL, (double)pending);
}

static void keyset_family(FILE *f, const struct row *rows, size_t n, const char *name,
			  const char *help, time_t (*val)(const struct row *))
{
	size_t k;

	metrics_family(f, name, "gauge", help);
	for (k = 0; k < n; k++)
		if (rows[k].state != ST_UNEXPORTABLE && val(&rows[k]) >= 0)
			metrics_sample(f, name, (const char *const[]){ "keyset", rows[k].name, NULL },
				       (double)val(&rows[k]));
}

static time_t changed_of(const struct row *r)
{
	return r->i.changed_at;
}

static time_t sealed_of(const struct row *r)
{
	return r->i.sealed_at ? r->i.sealed_at : -1; /* none yet: no sample */
}

static time_t backup_of(const struct row *r)
{
	return r->i.backup_at;
}

static void keysets_out(FILE *f, const struct row *rows, size_t n)
{
	size_t k;

	keyset_family(f, rows, n, "keyfs_keyset_changed_timestamp_seconds",
		      "When keyfs first saw the keyset's current version or sealing key.", changed_of);
	keyset_family(f, rows, n, "keyfs_keyset_sealed_timestamp_seconds",
		      "When the keyset's current export was sealed.", sealed_of);
	keyset_family(f, rows, n, "keyfs_keyset_backup_timestamp_seconds",
		      "When an export of the keyset was last read to the end; 0: never.", backup_of);
	metrics_family(f, "keyfs_keyset_backup_state", "gauge",
		       "The keyset's backup state (the one present is 1).");
	for (k = 0; k < n; k++)
		metrics_sample(f, "keyfs_keyset_backup_state",
			       (const char *const[]){ "keyset", rows[k].name, "state",
						      state_names[rows[k].state], NULL }, 1);
	metrics_family(f, "keyfs_keyset_seal_failed", "gauge",
		       "Present, as 1, for keysets whose last seal failed.");
	for (k = 0; k < n; k++)
		if (rows[k].state != ST_UNEXPORTABLE && rows[k].i.seal_error)
			metrics_sample(f, "keyfs_keyset_seal_failed",
				       (const char *const[]){ "keyset", rows[k].name, NULL }, 1);
}

static void hook_failed(void *arg, const char *keyset)
{
	metrics_sample(arg, "keyfs_keyset_activation_failed",
		       (const char *const[]){ "keyset", keyset, NULL }, 1);
}

static void command_failed(void *arg, const char *keyset)
{
	metrics_sample(arg, "keyfs_keyset_command_failed",
		       (const char *const[]){ "keyset", keyset, NULL }, 1);
}

static void hooks_out(FILE *f, struct ctl *c)
{
	metrics_family(f, "keyfs_keyset_activation_failed", "gauge",
		       "1 for a live keyset whose last on_activate failed or could not start, "
		       "until one succeeds.");
	store_live_hooks_failed(c->st, hook_failed, f);
	metrics_family(f, "keyfs_keyset_command_failed", "gauge",
		       "1 for a command keyset whose last backup_command failed, timed out or "
		       "wrote nothing, until one succeeds.");
	store_command_failed(c->st, command_failed, f);
}

static void imports_out(FILE *f, struct ctl *c)
{
	static const char *const kinds[2] = { "import", "verify" };
	uint64_t counts[2][IMPORT_OUTCOMES];
	size_t k, o;

	import_counts(c->im, counts);
	metrics_family(f, "keyfs_imports_total", "counter",
		       "Files processed in import/ (kind=import) and verify/ (kind=verify), by outcome.");
	for (k = 0; k < 2; k++)
		for (o = 0; o < IMPORT_OUTCOMES; o++)
			metrics_sample(f, "keyfs_imports_total",
				       (const char *const[]){ "kind", kinds[k], "outcome",
							      import_outcome_name(o), NULL },
				       (double)counts[k][o]);
}

int report_metrics(struct ctl *c, char **text, size_t *len, time_t *mtime)
{
	struct totals t = { 0 };
	struct histogram h;
	struct row *rows = NULL;
	char **names = NULL;
	size_t n = 0, k;
	FILE *f = NULL;
	int ret;

	*mtime = 0;
	if (!c->sc || !c->fresh)
		return -ENOTSUP;
	ret = c->st->ops->list(c->st->priv, &names, &n);
	if (ret)
		return ret;
	rows = calloc(n ? n : 1, sizeof(*rows));
	f = rows ? textbuf_open(text, len) : NULL;
	if (!f) {
		ret = -ENOMEM;
		goto out;
	}
	for (k = 0; k < n; k++)
		assess(c, names[k], &rows[k], &t);
	totals_out(f, c, &t);
	if (c->cfg->metrics_per_keyset)
		keysets_out(f, rows, n);
	fresh_seal_durations(c->fresh, &h);
	metrics_histogram(f, "keyfs_seal_duration_seconds",
			  "Time to seal one keyset (scrypt, tar, armor, cache file).", &h);
	hooks_out(f, c);
	imports_out(f, c);
	if (fclose(f)) {
		free(*text);
		*text = NULL;
		ret = -ENOMEM;
	}
out:
	free(rows);
	store_list_free(names);
	return ret;
}
