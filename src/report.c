/* Plain-text reports: the status read from .control and the README.txt
 * beside the exports. Neither carries a secret: keyset names,
 * fingerprints, times and hints only. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/bundle.h"
#include "keyfs/control.h"
#include "keyfs/meta.h"

static void iso_time(time_t t, char buf[static 32])
{
	struct tm tm;

	if (!t || !gmtime_r(&t, &tm) || !strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		strcpy(buf, "never");
}

/* What the summary lines count. */
struct tally {
	size_t sealed;
	size_t state[3];	/* by enum fresh_state */
};

struct ks_info {
	char fpr[2 * BUNDLE_FPR_LEN + 1];
	char hint[KEYSET_HINT_MAX + 1];
	char sealed[32];
	time_t sealed_at;
	char export_time[32];	/* the export's mtime: sealed or due to be */
	time_t export_mtime;
	bool current;
	unsigned *versions;	/* inactive version numbers */
	size_t nversions;
	char why[256];		/* why it cannot be exported */
	char sealer[1024];	/* what seals it (sealcache_sealer()) */
	bool fresh;		/* backup below is known */
	struct fresh_info backup;
};

static int ks_info(struct ctl *c, const char *name, bool keys, struct ks_info *i)
{
	struct export_attr a;
	time_t sealed_at;
	int ret;

	ret = sealcache_attr(c->sc, name, &a);
	if (ret == -ENOENT && sealcache_problem(c->sc, name, i->why, sizeof(i->why)))
		return -EPERM; /* cannot be exported: i->why says why */
	if (!ret)
		ret = sealcache_fingerprint(c->sc, name, i->fpr);
	if (ret)
		return ret;
	sealcache_hint(c->sc, name, i->hint, sizeof(i->hint));
	sealcache_sealer(c->sc, name, keys, i->sealer, sizeof(i->sealer));
	ret = sealcache_state(c->sc, name, &i->current, &sealed_at);
	iso_time(sealed_at, i->sealed);
	i->sealed_at = sealed_at;
	i->export_mtime = !ret && a.sealed ? a.mtime : 0;
	iso_time(i->export_mtime, i->export_time);
	if (!ret)
		ret = store_versions(c->st, name, &i->versions, &i->nversions);
	/* after sealcache_attr(), which told the records what the export is */
	i->fresh = !ret && c->fresh && !fresh_get(c->fresh, name, &i->backup);
	return ret;
}

/* Runs fn for each keyset; a keyset that cannot be read is reported as
 * such rather than hiding the rest. */
/* *newest: the newest export time, which is what README.txt's text
 * changes with. */
static int each_keyset(struct ctl *c, FILE *f, size_t *total, struct tally *t, time_t *newest,
		       bool keys,
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
	for (k = 0; k < n; k++) {
		memset(&info, 0, sizeof(info));
		fn(f, names[k], &info, ks_info(c, names[k], keys, &info), t);
		if (info.export_mtime > *newest)
			*newest = info.export_mtime;
		free(info.versions);
	}
	store_names_free(names, n);
	*total = n;
	return 0;
}

static void backup_words(FILE *f, const struct ks_info *i)
{
	char at[32], changed[32];

	if (!i->fresh)
		return;
	iso_time(i->backup.backup_at, at);
	iso_time(i->backup.changed_at, changed);
	switch (fresh_state_of(&i->backup)) {
	case FRESH_BACKED_UP:
		fprintf(f, "; backed up %s by %s (uid %u)", at, i->backup.backup_comm,
			(unsigned)i->backup.backup_uid);
		break;
	case FRESH_CHANGED:
		fprintf(f, "; changed since last backup (changed %s, last backup %s by %s)", changed,
			at, i->backup.backup_comm);
		break;
	case FRESH_NEVER:
		fprintf(f, "; never backed up (changed %s)", changed);
		break;
	}
	if (i->backup.seal_error)
		fprintf(f, "; SEALING FAILED: %s", strerror(-i->backup.seal_error));
}

static void status_line(FILE *f, const char *name, const struct ks_info *i, int err, struct tally *t)
{
	t->sealed += !err && i->current;
	if (!err && i->fresh)
		t->state[fresh_state_of(&i->backup)]++;
	if (err == -EPERM) {
		fprintf(f, "  %-20s NOT EXPORTED: %s\n", name, i->why);
		return;
	}
	if (err) {
		fprintf(f, "  %-20s unreadable: %s\n", name, strerror(-err));
		return;
	}
	fprintf(f, "  %-20s %s (sealed %s)  fingerprint %.16s  by %s  active", name,
		i->current ? "sealed" : "not sealed", i->sealed, i->fpr, i->sealer);
	if (i->nversions) {
		fprintf(f, "; inactive versions:");
		for (size_t k = 0; k < i->nversions; k++)
			fprintf(f, " %u", i->versions[k]);
	}
	backup_words(f, i);
	fputc('\n', f);
}

/* len was filled in by open_memstream() and is final after fclose(). */
static int finish(FILE *f, char **text, int ret)
{
	if (fclose(f) || ret) {
		free(*text);
		*text = NULL;
		return ret ? ret : -ENOMEM;
	}
	return 0;
}

int ctl_status(struct ctl *c, char **text, size_t *len, time_t *mtime)
{
	size_t total = 0, workers, pending, n, i;
	struct tally t = { 0 };
	char names[VAULT_KEYSET_SLOTS][KEYSET_NAME_MAX + 1];
	char hint[KEYSET_HINT_MAX + 1];
	FILE *f;
	int ret;

	f = open_memstream(text, len);
	if (!f)
		return -ENOMEM;
	meta_hint_for(c->state, NULL, hint, sizeof(hint));
	fprintf(f, "keyfs %s\n", KEYFS_VERSION);
	fprintf(f, "store: %s\n", c->cfg->store);
	fprintf(f, "password: %s\n", vault_has_password(c->v) ? "set (unlocked)" : "not set (locked)");
	n = vault_keysets(c->v, names, VAULT_KEYSET_SLOTS);
	fprintf(f, "keyset passwords:%s", n ? "" : " (none)");
	for (i = 0; i < n; i++)
		fprintf(f, " %s", names[i]);
	fprintf(f, "\nunlock passwords: %zu\n", vault_unlock_count(c->v));
	keyring_report(c->kr, f);
	fprintf(f, "hint: %s\n", *hint ? hint : "(none)");
	fprintf(f, "recipients: %s\n", *c->cfg->recipients ? c->cfg->recipients : "(none)");
	sealcache_recipients_report(c->sc, f);
	fprintf(f, "work factor: %d\n", c->cfg->work_factor);
	fprintf(f, "keysets:\n");
	*mtime = 0;
	ret = each_keyset(c, f, &total, &t, mtime, false, status_line);
	sealcache_progress(c->sc, &workers, &pending);
	fprintf(f, "sealed %zu/%zu (%zu queued or sealing, %zu workers)\n", t.sealed, total, pending,
		workers);
	if (c->fresh)
		fprintf(f, "backups: %zu/%zu backed up, %zu changed since last backup, %zu never "
			"backed up\n", t.state[FRESH_BACKED_UP], total, t.state[FRESH_CHANGED],
			t.state[FRESH_NEVER]);
	fprintf(f, "last imports (newest first):\n");
	import_report(c->im, f);
	return finish(f, text, ret);
}

static void readme_line(FILE *f, const char *name, const struct ks_info *i, int err, struct tally *t)
{
	(void)t;
	if (err == -EPERM) {
		fprintf(f, "  %s: NOT EXPORTED, no backup here: %s\n\n", name, i->why);
		return;
	}
	if (err) {
		fprintf(f, "  %s.pem: cannot be read from the store (%s)\n\n", name, strerror(-err));
		return;
	}
	fprintf(f, "  %s.pem\n    fingerprint: %s\n    sealed at:   %s\n    sealed by:   %s\n"
		"    hint:        %s\n\n", name, i->fpr,
		i->export_mtime ? i->export_time : "not yet (no password)", i->sealer,
		*i->hint ? i->hint : "(none)");
}

int ctl_readme(struct ctl *c, char **text, size_t *len, time_t *mtime)
{
	struct tally t = { 0 };
	size_t total = 0;
	FILE *f;
	int ret;

	f = open_memstream(text, len);
	if (!f)
		return -ENOMEM;
	fprintf(f,
		"keyfs key backups\n"
		"=================\n\n"
		"Each <keyset>.pem here is a sealed backup of one keyset: a standard\n"
		"age v1 file holding a tar archive of the key files and KEYSET.ini,\n"
		"sealed either by a password (scrypt, work factor %d) or to public\n"
		"keys (\"sealed by\" below names them; any one of them opens it). A\n"
		"password cannot be recovered if lost; the hint below is all that is\n"
		"kept of it.\n\n"
		"Keysets\n-------\n\n", c->cfg->work_factor);
	/* It tells the exports' times, which are fixed when a seal is
	 * queued (not when it completes), so it changes only with them;
	 * its own time is the newest of them, stable across restarts. */
	*mtime = 0;
	ret = each_keyset(c, f, &total, &t, mtime, true, readme_line);
	fprintf(f,
		"Restore with keyfs (mounted at MNT; a keyset that differs from the one in\n"
		"the store arrives as an inactive version):\n\n"
		"  cp sm.pem MNT/verify/     # check the copy first; close() reports the outcome\n"
		"  cp sm.pem MNT/import/     # restore\n\n"
		"Restore without keyfs (stock age and tar; age asks for the password,\n"
		"or give it the identity of one of the public keys with -i):\n\n"
		"  age -d -o sm.tar sm.pem && tar -xf sm.tar\n"
		"  age -d -i key.txt -o sm.tar sm.pem     # or -i ~/.ssh/id_ed25519\n\n"
		"This writes the directory sm/ with the key files and sm/KEYSET.ini;\n"
		"compare sm/KEYSET.ini's fingerprint with the one above.\n");
	return finish(f, text, ret);
}
