/* README.txt beside the exports (report.h): what a restorer finds with
 * the backups. No secret, and no line per keyset: its text changes only
 * with the sealing keys, the exceptions and the keysets that cannot be
 * exported, so backups do not send it again for every change. Every
 * text from outside keyfs goes through escape.h. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/control.h"
#include "keyfs/escape.h"
#include "keyfs/meta.h"
#include "keyfs/textbuf.h"

#include "report_priv.h"

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
	ret = report_finish(f, text, 0);
	if (!ret)
		*mtime = readme_mtime(*text, *len);
	return ret;
}
