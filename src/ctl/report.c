/* The plain-text status read from .control (the list of every keyset,
 * .keysets: report_list.c; README.txt: report_readme.c). No report
 * carries a secret: keyset names, fingerprints, times and hints only.
 * Every text that comes from outside keyfs (names, reasons, paths,
 * hints, program names) goes through escape.h, so none can add a line
 * or reach the reader's terminal.
 *
 * The status stays the same size however many keysets there are: a line
 * per keyset up to STATUS_ALL_MAX of them; past that only the keysets
 * with problems and the oldest changes not backed up, each list bounded. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/bundle.h"
#include "keyfs/control.h"
#include "keyfs/escape.h"
#include "keyfs/meta.h"
#include "keyfs/store_command.h"
#include "keyfs/store_live.h"
#include "keyfs/textbuf.h"

#include "report_priv.h"

/* v in n decimal digits at p (no NUL), the leading ones zeros. */
static void digits(char *p, unsigned long v, int n)
{
	while (n--) {
		p[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

/* "%Y-%m-%dT%H:%M:%SZ" by hand (the civil date of a day count, as in
 * H. Hinnant's "chrono-compatible low-level date algorithms"): a status
 * formats two times for each of a hundred thousand keysets, and
 * gmtime_r() takes a global lock and strftime() weighs. */
void report_iso_time(time_t t, char buf[static 32])
{
	long long days, era, doe, yoe, doy, mp, y;
	int secs;

	if (t <= 0 || t >= 253402300800LL) { /* before 1970 or after 9999 */
		strcpy(buf, "never");
		return;
	}
	days = t / 86400 + 719468;
	secs = (int)(t % 86400);
	era = days / 146097;
	doe = days - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	y = yoe + era * 400 + (mp >= 10);
	memcpy(buf, "0000-00-00T00:00:00Z", 21);
	digits(buf, (int)y, 4);
	digits(buf + 5, (int)(mp < 10 ? mp + 3 : mp - 9), 2);
	digits(buf + 8, (int)(doy - (153 * mp + 2) / 5 + 1), 2);
	digits(buf + 11, secs / 3600, 2);
	digits(buf + 14, secs / 60 % 60, 2);
	digits(buf + 17, secs % 60, 2);
}

#define STATUS_ALL_MAX 64
#define STATUS_PROBLEMS_MAX 32
#define STATUS_PENDING_MAX 16

/* A keyset changed and not backed up since, by when it changed. */
struct pending {
	time_t changed_at;
	char name[KEYSET_NAME_MAX + 1];
};

/* What the summary lines count, and the keysets a long status shows. */
struct tally {
	size_t sealed;
	size_t state[3];	/* by enum fresh_state */
	bool all;		/* a line for every keyset */
	char problems[STATUS_PROBLEMS_MAX][KEYSET_NAME_MAX + 1];
	size_t nproblems;	/* found, shown or not */
	struct pending pending[STATUS_PENDING_MAX]; /* the oldest, oldest first */
	size_t npending;	/* kept */
};

/* From memory: the seal cache, the store watcher and the backup records
 * (read by sealcache_report(), after it told them what the export is)
 * know every keyset seen; a status read touches no keyset. */
int report_ks_info(struct ctl *c, const char *name, struct ks_info *i, bool versions)
{
	int ret, vret = 0;

	ret = sealcache_report(c->sc, name, &i->r);
	if (ret && ret != -EPERM)
		return ret;
	report_iso_time(i->r.sealed_at, i->sealed);
	/* also of one that cannot be exported: what a restore would activate */
	if (versions)
		vret = store_versions(c->st, name, &i->versions, &i->nversions);
	return ret ? ret : vret;
}

/* Runs fn for each keyset; a keyset that cannot be read is reported as
 * such rather than hiding the rest. */
static int each_keyset(struct ctl *c, FILE *f, size_t *total, struct tally *t,
		       void (*fn)(FILE *f, const char *name, const struct ks_info *i, int err,
				  struct tally *t))
{
	struct ks_info info;
	char **names;
	size_t n, k;
	int ret;

	ret = c->st->ops->list(c->st->priv, &names, &n);
	if (ret)
		return ret;
	t->all = n <= STATUS_ALL_MAX;
	store_batch(c->st, true);
	for (k = 0; k < n; k++) {
		/* what is read unset; the report's text fields are set by it */
		info.versions = NULL;
		info.nversions = 0;
		/* counting needs no versions: only lines show them */
		fn(f, names[k], &info, report_ks_info(c, names[k], &info, t->all), t);
		free(info.versions);
	}
	store_batch(c->st, false);
	store_list_free(names);
	*total = n;
	return 0;
}


/* A keyset name, escaped, padded to width columns. */
static void put_name(FILE *f, const char *name, size_t width)
{
	char shown[4 * KEYSET_NAME_MAX + 1];
	size_t n = escape_str(shown, sizeof(shown), name, 0);

	fwrite_unlocked(shown, 1, n, f);
	for (; n < width; n++)
		fputc_unlocked(' ', f);
}

static void put_time(FILE *f, time_t t)
{
	char buf[32];

	report_iso_time(t, buf);
	put(f, buf);
}

static void put_uint(FILE *f, unsigned v)
{
	char buf[12];
	int n = 1;

	for (unsigned rest = v; rest >= 10; rest /= 10)
		n++;
	digits(buf, v, n);
	buf[n] = '\0';
	put(f, buf);
}

/* "<time> by <program>" of the last backup */
static void put_backup(FILE *f, const struct fresh_info *b)
{
	put_time(f, b->backup_at);
	put(f, " by ");
	escape_put(f, b->backup_comm); /* any reader names itself */
}

static void backup_words(FILE *f, const struct ks_info *i)
{
	const struct fresh_info *b = &i->r.backup;

	if (!i->r.fresh)
		return;
	switch (fresh_state_of(b)) {
	case FRESH_BACKED_UP: /* "; backed up %s by %s (uid %u)" */
		put(f, "; backed up ");
		put_backup(f, b);
		put(f, " (uid ");
		put_uint(f, (unsigned)b->backup_uid);
		put(f, ")");
		break;
	case FRESH_CHANGED: /* "; changed since last backup (changed %s, last backup %s by %s)" */
		put(f, "; changed since last backup (changed ");
		put_time(f, b->changed_at);
		put(f, ", last backup ");
		put_backup(f, b);
		put(f, ")");
		break;
	case FRESH_NEVER:
		put(f, "; never backed up (changed ");
		put_time(f, b->changed_at);
		put(f, ")");
		break;
	}
	if (i->r.backup.seal_error)
		fprintf(f, "; SEALING FAILED: %s", strerror(-i->r.backup.seal_error));
}

static void put_versions(FILE *f, const struct ks_info *i)
{
	if (!i->nversions)
		return;
	put(f, "; inactive versions:");
	for (size_t k = 0; k < i->nversions; k++) {
		fputc_unlocked(' ', f);
		put_uint(f, i->versions[k]);
	}
}

static void status_line(FILE *f, const char *name, const struct ks_info *i, int err)
{
	put(f, "  ");
	put_name(f, name, 20);
	if (err == -EPERM) {
		/* the reason names members: file names in a live directory */
		put(f, " NOT EXPORTED: ");
		escape_put(f, i->r.why);
		/* what a restore of it would activate */
		put_versions(f, i);
		fputc_unlocked('\n', f);
		return;
	}
	if (err) {
		fprintf(f, " unreadable: %s\n", strerror(-err));
		return;
	}
	/* "  %-20s %s (sealed %s)  fingerprint %.16s  by %s  active" */
	put(f, i->r.current ? " sealed (sealed " : " not sealed (sealed ");
	put(f, i->sealed);
	put(f, ")  fingerprint ");
	if (*i->r.fpr)
		fwrite_unlocked(i->r.fpr, 1, strnlen(i->r.fpr, 16), f);
	else
		put(f, "(not read yet)");
	put(f, "  by ");
	escape_put(f, i->r.sealer); /* a recipients file's path */
	put(f, "  active");
	put_versions(f, i);
	backup_words(f, i);
	fputc_unlocked('\n', f);
}

/* Keeps name among the oldest changes not backed up. */
static void keep_pending(struct tally *t, const char *name, time_t changed_at)
{
	size_t k = t->npending;

	if (k == STATUS_PENDING_MAX && changed_at >= t->pending[k - 1].changed_at)
		return;
	if (k == STATUS_PENDING_MAX)
		k--;
	else
		t->npending++;
	for (; k > 0 && t->pending[k - 1].changed_at > changed_at; k--)
		t->pending[k] = t->pending[k - 1];
	t->pending[k].changed_at = changed_at;
	snprintf(t->pending[k].name, sizeof(t->pending[k].name), "%s", name);
}

/* Counts the keyset, and writes its line (a short status) or keeps it
 * for one of the bounded lists (a long one). */
static void status_count(FILE *f, const char *name, const struct ks_info *i, int err,
			 struct tally *t)
{
	enum fresh_state st = i->r.fresh ? fresh_state_of(&i->r.backup) : FRESH_BACKED_UP;

	t->sealed += !err && i->r.current;
	if (!err && i->r.fresh)
		t->state[st]++;
	if (t->all) {
		status_line(f, name, i, err);
	} else if (err || i->r.backup.seal_error) {
		if (t->nproblems < STATUS_PROBLEMS_MAX)
			snprintf(t->problems[t->nproblems], sizeof(t->problems[0]), "%s", name);
		t->nproblems++;
	} else if (i->r.fresh && st != FRESH_BACKED_UP) {
		keep_pending(t, name, i->r.backup.changed_at);
	}
}

/* A long status: the keysets kept, each with its line as a short one
 * has it. */
static void status_kept(struct ctl *c, FILE *f, size_t total, struct tally *t)
{
	struct ks_info info;
	size_t k, shown = t->nproblems < STATUS_PROBLEMS_MAX ? t->nproblems : STATUS_PROBLEMS_MAX;

	fprintf(f, "  (%zu keysets: %zu with problems, and the %zu oldest changes not backed up "
		"are shown; every keyset: keyfsctl list)\n", total, t->nproblems, t->npending);
	for (k = 0; k < shown + t->npending; k++) {
		const char *name = k < shown ? t->problems[k] : t->pending[k - shown].name;

		info.versions = NULL;
		info.nversions = 0;
		status_line(f, name, &info, report_ks_info(c, name, &info, true));
		free(info.versions);
	}
	if (t->nproblems > shown)
		fprintf(f, "  (and %zu more with problems)\n", t->nproblems - shown);
}

/* "label: text\n", text escaped, or the words for none. */
static void put_field(FILE *f, const char *label, const char *text, const char *none)
{
	put(f, label);
	if (*text)
		escape_put(f, text);
	else
		put(f, none);
	fputc_unlocked('\n', f);
}

/* len was filled in by textbuf_open() and is final after fclose(). */
int report_finish(FILE *f, char **text, int ret)
{
	if (fclose(f) || ret) {
		free(*text);
		*text = NULL;
		return ret ? ret : -ENOMEM;
	}
	return 0;
}

/* "signer: keyfs@HOST namespaces=\"keyfs\" ssh-ed25519 AAAA...", the
 * allowed_signers line of the key signing every export; near the top,
 * where keyfsctl signer stops reading. The host name is escaped. */
static void put_signer(struct ctl *c, FILE *f)
{
	char line[SSHSIG_PRINCIPAL_MAX + SSHSIG_PUBKEY_TEXT_MAX + 64];

	if (!c->sign || signkey_allowed_line(c->sign, line, sizeof(line)) < 0)
		return;
	line[strcspn(line, "\n")] = '\0';
	fputs("signer: ", f);
	escape_put(f, line);
	fputc('\n', f);
}

int report_status(struct ctl *c, char **text, size_t *len, time_t *mtime)
{
	size_t total = 0, workers, pending, n, i;
	struct tally t = { 0 };
	char names[VAULT_KEYSET_SLOTS][KEYSET_NAME_MAX + 1];
	char hint[KEYSET_HINT_MAX + 1], hooks[8192];
	FILE *f;
	int ret;

	f = textbuf_open(text, len);
	if (!f)
		return -ENOMEM;
	meta_hint_for(c->state, NULL, hint, sizeof(hint));
	fprintf(f, "keyfs %s\n", KEYFS_VERSION);
	put_signer(c, f);
	put_field(f, "store: ", c->cfg->store, "");
	fprintf(f, "password: %s\n", vault_has_password(c->v) ? "set (unlocked)" : "not set (locked)");
	n = vault_keysets(c->v, names, VAULT_KEYSET_SLOTS);
	fprintf(f, "keyset passwords:%s", n ? "" : " (none)");
	for (i = 0; i < n; i++) {
		fputc_unlocked(' ', f);
		escape_put(f, names[i]);
	}
	fprintf(f, "\nunlock passwords: %zu\n", vault_unlock_count(c->v));
	keyring_report(c->kr, f);
	put_field(f, "hint: ", hint, "(none)");
	put_field(f, "recipients: ", c->cfg->recipients, "(none)");
	sealcache_recipients_report(c->sc, f);
	fprintf(f, "work factor: %d\n", c->cfg->work_factor);
	fprintf(f, "keysets:\n");
	*mtime = 0;
	ret = each_keyset(c, f, &total, &t, status_count);
	if (ret == 0 && !t.all)
		status_kept(c, f, total, &t);
	sealcache_progress(c->sc, &workers, &pending);
	fprintf(f, "sealed %zu/%zu (%zu queued or sealing, %zu workers)\n", t.sealed, total, pending,
		workers);
	if (c->fresh)
		fprintf(f, "backups: %zu/%zu backed up, %zu changed since last backup, %zu never "
			"backed up\n", t.state[FRESH_BACKED_UP], total, t.state[FRESH_CHANGED],
			t.state[FRESH_NEVER]);
	store_live_status(c->st, hooks, sizeof(hooks));
	/* "on_activate K: exited 0 at ...: output", per live keyset; the
	 * output escaped by hook_describe(), keyset names are config's */
	fputs(hooks, f);
	/* "backup_command K: exited 0 at ...", per command keyset */
	store_command_status(c->st, hooks, sizeof(hooks));
	fputs(hooks, f);
	fprintf(f, "last imports (newest first):\n");
	import_report(c->im, f);
	return report_finish(f, text, ret);
}
