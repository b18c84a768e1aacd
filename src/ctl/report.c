/* Plain-text reports: the status read from .control and the README.txt
 * beside the exports. Neither carries a secret: keyset names,
 * fingerprints, times and hints only. Every text that comes from outside
 * keyfs (names, reasons, paths, hints, program names) goes through
 * escape.h, so none can add a line or reach the reader's terminal. */
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
static void iso_time(time_t t, char buf[static 32])
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

/* What the summary lines count. */
struct tally {
	size_t sealed;
	size_t state[3];	/* by enum fresh_state */
};

struct ks_info {
	struct export_report r;
	char sealed[32];
	unsigned *versions;	/* inactive version numbers */
	size_t nversions;
};

/* From memory: the seal cache, the store watcher and the backup records
 * (read by sealcache_report(), after it told them what the export is)
 * know every keyset seen; a status read touches no keyset. */
static int ks_info(struct ctl *c, const char *name, struct ks_info *i)
{
	int ret;

	ret = sealcache_report(c->sc, name, &i->r);
	if (ret)
		return ret;
	iso_time(i->r.sealed_at, i->sealed);
	return store_versions(c->st, name, &i->versions, &i->nversions);
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
	store_batch(c->st, true);
	for (k = 0; k < n; k++) {
		/* what is read unset; the report's text fields are set by it */
		info.versions = NULL;
		info.nversions = 0;
		fn(f, names[k], &info, ks_info(c, names[k], &info), t);
		free(info.versions);
	}
	store_batch(c->st, false);
	store_names_free(names, n);
	*total = n;
	return 0;
}

/* Pieces of a status line, written without printf's parsing: a status
 * has a line per keyset. */
static void put(FILE *f, const char *s)
{
	fputs_unlocked(s, f);
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

	iso_time(t, buf);
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

static void status_line(FILE *f, const char *name, const struct ks_info *i, int err, struct tally *t)
{
	t->sealed += !err && i->r.current;
	if (!err && i->r.fresh)
		t->state[fresh_state_of(&i->r.backup)]++;
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
static int finish(FILE *f, char **text, int ret)
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
	ret = each_keyset(c, f, &total, &t, status_line);
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
	return finish(f, text, ret);
}

/* The keysets that cannot be exported, "name\twhy" each, to sort. */
struct problems {
	char **lines;
	size_t n;
};

static void add_problem(void *arg, const char *name, const char *why)
{
	struct problems *p = arg;
	char **grown;

	grown = realloc(p->lines, (p->n + 1) * sizeof(*p->lines));
	if (!grown)
		return;
	p->lines = grown;
	if (asprintf(&p->lines[p->n], "%s\t%s", name, why) >= 0)
		p->n++;
}

static int cmp_lines(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists what has no backup here (a keyset gone meanwhile is not) under
 * its heading, or says in one line that nothing is missing: a restorer
 * reading this from a backup learns that the exports beside it are all
 * there were. */
static void readme_problems(struct ctl *c, FILE *f)
{
	struct problems p = { NULL, 0 };
	bool shown = false;
	uint64_t stamp;
	char *tab;
	size_t k;

	sealcache_each_problem(c->sc, add_problem, &p);
	if (p.n)
		qsort(p.lines, p.n, sizeof(*p.lines), cmp_lines);
	for (k = 0; k < p.n; k++) {
		tab = strchr(p.lines[k], '\t');
		*tab = '\0';
		if (c->st->ops->stamp(c->st->priv, p.lines[k], &stamp) != -ENOENT) {
			if (!shown)
				put(f, "Keysets without a backup here\n"
				       "-----------------------------\n\n");
			shown = true;
			/* the reason names members: file names in a live directory */
			put(f, "  ");
			escape_put(f, p.lines[k]);
			put(f, ": NOT EXPORTED, no backup here: ");
			escape_put(f, tab + 1);
			fputc('\n', f);
		}
		free(p.lines[k]);
	}
	free(p.lines);
	if (!shown)
		put(f, "Keysets without a backup here: none; every keyset has its .pem file.\n");
}

/* README.txt's time: when its text last changed in this daemon's life.
 * Its text does not depend on any one keyset's export. */
static pthread_mutex_t readme_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t readme_hash;
static time_t readme_time;

static time_t readme_mtime(const char *text, size_t len)
{
	uint64_t h = 14695981039346656037ULL;
	time_t t;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ (uint8_t)text[i]) * 1099511628211ULL;
	pthread_mutex_lock(&readme_lock);
	if (h != readme_hash || !readme_time) {
		t = time(NULL);
		/* never the time of another text */
		readme_time = t > readme_time ? t : readme_time + 1;
		readme_hash = h;
	}
	t = readme_time;
	pthread_mutex_unlock(&readme_lock);
	return t;
}

/* "    NAME.pem: SEALER" (a recipients file's path, its keys' comments),
 * under the heading when it is the first. */
static void own_sealer(FILE *f, bool *shown, const char *name, const char *sealer)
{
	if (!*shown)
		put(f, "but these, sealed by their own:\n\n");
	*shown = true;
	put(f, "    ");
	escape_put(f, name);
	put(f, ".pem: ");
	escape_put(f, sealer);
	fputc('\n', f);
}

/* The keysets sealed otherwise than the rest: those with recipients of
 * their own in the configuration, and those with a password of their
 * own. Bounded by the configuration and the vault, never by the number
 * of keysets. Nothing, not even the heading, when there are none. */
static void readme_own_sealers(struct ctl *c, FILE *f)
{
	char names[VAULT_KEYSET_SLOTS][KEYSET_NAME_MAX + 1], sealer[4096];
	bool shown = false;
	size_t i, n;

	for (i = 0; i < c->cfg->nkeysets; i++) {
		if (!*c->cfg->keysets[i].recipients)
			continue;
		sealcache_sealer(c->sc, c->cfg->keysets[i].name, true, sealer, sizeof(sealer));
		own_sealer(f, &shown, c->cfg->keysets[i].name, sealer);
	}
	n = vault_keysets(c->v, names, VAULT_KEYSET_SLOTS);
	for (i = 0; i < n; i++)
		if (!config_keyset(c->cfg, names[i]) || !*config_keyset(c->cfg, names[i])->recipients)
			own_sealer(f, &shown, names[i], "its own password");
	if (shown)
		fputc('\n', f);
}

/* The key this keyfs signs with, for the check above. */
static void put_readme_signer(struct ctl *c, FILE *f)
{
	char line[SSHSIG_PRINCIPAL_MAX + SSHSIG_PUBKEY_TEXT_MAX + 64];

	if (!c->sign || signkey_allowed_line(c->sign, line, sizeof(line)) < 0) {
		put(f, "This keyfs signs with no key: its exports carry no KEYSET.sig.\n");
		return;
	}
	line[strcspn(line, "\n")] = '\0';
	put(f, "Exports made here are signed by:\n\n    ");
	escape_put(f, line);
	fputc('\n', f);
}

int report_readme(struct ctl *c, char **text, size_t *len, time_t *mtime)
{
	char hint[KEYSET_HINT_MAX + 1], sealer[4096], shown_hint[4 * KEYSET_HINT_MAX + 1];
	char shown_sealer[4 * sizeof(sealer)];
	FILE *f;
	int ret;

	f = textbuf_open(text, len);
	if (!f)
		return -ENOMEM;
	meta_hint_for(c->state, NULL, hint, sizeof(hint));
	sealcache_default_sealer(c->sc, true, sealer, sizeof(sealer));
	escape_str(shown_hint, sizeof(shown_hint), hint, 0);
	escape_str(shown_sealer, sizeof(shown_sealer), sealer, 0);
	/* Per-keyset facts (fingerprint, seal time, hint) travel in each
	 * export (KEYSET.ini, the file's mtime) and are in the status: listed
	 * here, they made this file grow with the keysets and change with any
	 * of them, so that every backup sent it again. Only the keysets that
	 * are exceptions are named, and a heading only with lines below it. */
	fprintf(f,
		"keyfs key backups\n"
		"=================\n\n"
		"Each <keyset>.pem here is a sealed backup of one keyset: a standard\n"
		"age v1 file holding a tar archive of the keyset's files (owners and\n"
		"groups by name, modes, times, symlinks, extended attributes and ACLs)\n"
		"and <keyset>/KEYSET.ini (its name, fingerprint, the time of its newest\n"
		"file, password hint, and every member with its owner, mode and sha256),\n"
		"signed by this keyfs in <keyset>/KEYSET.sig (an SSH signature, checked\n"
		"below). The .pem file's modification time is when it\n"
		"was sealed; \"keyfsctl status\" lists every keyset with its fingerprint\n"
		"and seal time. It is sealed either by a password (scrypt, work factor\n"
		"%d) or to public keys (any one of them opens it). A password cannot be\n"
		"recovered if lost; the hint is all that is kept of it.\n\n"
		"    sealed by:   %s\n"
		"    hint:        %s\n\n", c->cfg->work_factor, shown_sealer,
		*hint ? shown_hint : "(none)");
	readme_own_sealers(c, f);
	readme_problems(c, f);
	put(f,
	    "\nRestore with keyfs (mounted at MNT): a keyset absent there is installed;\n"
	    "one that differs from the keys there arrives as an inactive version,\n"
	    "which \"keyfsctl -m MNT activate KEYSET N\" (or restore --activate) installs.\n\n"
	    "  keyfsctl -m MNT restore --dry-run DIR    # the plan for every .pem in DIR\n"
	    "  keyfsctl -m MNT restore --activate DIR   # restore them all\n"
	    "  cp sm.pem MNT/verify/     # or one file: check the copy; close() reports\n"
	    "  cp sm.pem MNT/import/     # restore it\n\n"
	    "Restore without keyfs, as root, with stock age and GNU tar (age asks for\n"
	    "the password, or give it the identity of one of the public keys with -i):\n\n"
	    "  age -d -o sm.tar sm.pem              # or: age -d -i key.txt -o sm.tar sm.pem\n"
	    "  tar -xp --same-owner --xattrs --xattrs-include='*' -f sm.tar\n\n"
	    "This writes the directory sm/ with the keyset's files as they were below\n"
	    "its directory (a live keyset's path in keyfs.ini), owners looked up by\n"
	    "name, and sm/KEYSET.ini. --xattrs-include='*' restores ACLs and security.*\n"
	    "labels too (tar --xattrs alone restores only user.*); do not add --acls,\n"
	    "which resets the ACLs these archives carry as xattrs. Compare the\n"
	    "fingerprint in KEYSET.ini with the one \"keyfsctl status\" gave.\n\n"
	    "Check who made it and that every file is as backed up (stock OpenSSH;\n"
	    "allowed_signers holds the line \"keyfsctl signer\" prints, kept off the\n"
	    "server, and names the principal given to -I):\n\n"
	    "  ssh-keygen -Y verify -f allowed_signers -I keyfs@HOST -n keyfs \\\n"
	    "      -s sm/KEYSET.sig < sm/KEYSET.ini\n"
	    "  (cd sm && grep -E '^[0-9a-f]{64}  ' KEYSET.ini | sha256sum -c)\n\n");
	put_readme_signer(c, f);
	ret = finish(f, text, 0);
	if (!ret)
		*mtime = readme_mtime(*text, *len);
	return ret;
}
