/* Import and verify: unseal a staged backup, check its keyset and (import)
 * restore it without ever destroying keys; outcomes logged and kept for
 * the status report (see import.h). */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "keyfs/age.h"
#include "keyfs/age_recipient.h"
#include "keyfs/armor.h"
#include "keyfs/bundle.h"
#include "keyfs/escape.h"
#include "keyfs/import.h"
#include "keyfs/keyring.h"
#include "keyfs/keyset_owner.h"
#include "keyfs/log.h"
#include "keyfs/meta.h"
#include "keyfs/sshsig.h"
#include "keyfs/store_command.h"
#include "keyfs/store_live.h"

#include "import_sign.h"

/* A record line holds the keyset name, the outcome in words and a
 * whole fingerprint (64 hex digits, as KEYSET.ini has it). */
#define RECORD_LINE 1024

struct importer {
	struct store *st;
	const struct state *state;
	struct vault *v;
	struct keyring *kr;	/* NULL: passwords alone */
	const struct signkey *sign;	/* this keyfs' own; NULL: none */
	const char *signers;		/* allowed_signers file; "" or NULL: none */
	bool refuse_unauthenticated;	/* import.unauthenticated = refuse */
	void (*ask)(void *arg, const char *keyset);	/* password provider */
	void *ask_arg;
	int max_logn;				/* set before the first import */
	/* Held around every unsealing: one scrypt at a time. */
	pthread_mutex_t unseal_lock;
	pthread_mutex_t lock;
	char history[IMPORT_HISTORY][RECORD_LINE + 32];	/* ring; protected by lock */
	size_t next;				/* protected by lock */
	uint64_t counts[2][IMPORT_OUTCOMES];	/* protected by lock */
	void (*listen)(void *arg);
	void *listen_arg;
};

int import_new(struct importer **out, struct store *st, const struct state *state, struct vault *v)
{
	struct importer *im;

	im = calloc(1, sizeof(*im));
	if (!im)
		return -ENOMEM;
	im->st = st;
	im->state = state;
	im->v = v;
	im->max_logn = AGE_LOGN_DEFAULT;
	pthread_mutex_init(&im->unseal_lock, NULL);
	pthread_mutex_init(&im->lock, NULL);
	*out = im;
	return 0;
}

void import_free(struct importer *im)
{
	if (!im)
		return;
	pthread_mutex_destroy(&im->lock);
	pthread_mutex_destroy(&im->unseal_lock);
	free(im);
}

void import_set_provider(struct importer *im, void (*ask)(void *arg, const char *keyset),
			 void *arg)
{
	im->ask = ask;
	im->ask_arg = arg;
}

void import_set_keyring(struct importer *im, struct keyring *kr)
{
	im->kr = kr;
}

void import_set_signers(struct importer *im, const struct signkey *k, const char *signers,
			bool refuse_unauthenticated)
{
	im->sign = k;
	im->signers = signers;
	im->refuse_unauthenticated = refuse_unauthenticated;
}

void import_set_listener(struct importer *im, void (*fn)(void *arg), void *arg)
{
	im->listen = fn;
	im->listen_arg = arg;
}

const char *import_outcome_name(enum import_outcome o)
{
	static const char *const names[IMPORT_OUTCOMES] = {
		[IMPORT_OK] = "ok", [IMPORT_NO_PASSWORD] = "no_password",
		[IMPORT_REJECTED] = "rejected", [IMPORT_INVALID] = "invalid",
		[IMPORT_DAMAGED] = "damaged", [IMPORT_TOO_LARGE] = "too_large",
		[IMPORT_STORE_ERROR] = "store_error", [IMPORT_FORGED] = "forged",
		[IMPORT_UNAUTHENTICATED] = "unauthenticated",
	};

	return names[o];
}

static enum import_outcome outcome_of(int err)
{
	switch (err) {
	case 0:
		return IMPORT_OK;
	case -ENOKEY:
		return IMPORT_NO_PASSWORD;
	case -EKEYREJECTED:
		return IMPORT_REJECTED;
	case -EINVAL:
		return IMPORT_INVALID;
	case -EBADMSG:
		return IMPORT_DAMAGED;
	case -EFBIG:
		return IMPORT_TOO_LARGE;
	default:
		return IMPORT_STORE_ERROR;
	}
}

static void count(struct importer *im, bool verify_only, enum import_outcome o)
{
	pthread_mutex_lock(&im->lock);
	im->counts[verify_only][o]++;
	pthread_mutex_unlock(&im->lock);
	if (im->listen)
		im->listen(im->listen_arg);
}

void import_counts(struct importer *im, uint64_t counts[2][IMPORT_OUTCOMES])
{
	pthread_mutex_lock(&im->lock);
	memcpy(counts, im->counts, sizeof(im->counts));
	pthread_mutex_unlock(&im->lock);
}

void import_set_max_work_factor(struct importer *im, int logn)
{
	im->max_logn = logn;
}

static const char *in_words(int err)
{
	switch (err) {
	case -ENOKEY:
		return "no password or identity is available (set a password, or add one with "
		       "unlock or identity)";
	case -EKEYREJECTED:
		return "no password or identity held opens it, or its work factor is over the limit";
	case -EINVAL:
		return "not a valid keyfs backup (not age, bad armor, or a bad or unsafe tar)";
	case -EBADMSG:
		return "damaged or truncated: authentication failed";
	case -EFBIG:
		return "larger than the import limit";
	case -EIO:
		return "writing the keystore failed";
	default:
		return strerror(-err);
	}
}

/* Logs and records one outcome line. */
static void record(struct importer *im, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void record(struct importer *im, int level, const char *fmt, ...)
{
	char line[RECORD_LINE], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_msg(level, "%s", line);
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	pthread_mutex_lock(&im->lock);
	snprintf(im->history[im->next], sizeof(im->history[0]), "%s %s", stamp, line);
	im->next = (im->next + 1) % IMPORT_HISTORY;
	pthread_mutex_unlock(&im->lock);
}

void import_report(struct importer *im, FILE *f)
{
	size_t i, k;

	pthread_mutex_lock(&im->lock);
	for (i = 1; i <= IMPORT_HISTORY; i++) {
		k = (im->next + IMPORT_HISTORY - i) % IMPORT_HISTORY;
		if (!im->history[k][0])
			continue;
		fputs("  ", f);
		escape_put(f, im->history[k]);
		fputc('\n', f);
	}
	pthread_mutex_unlock(&im->lock);
}

/* The passwords as scrypt identities, which refuse before any work a
 * stanza above the limit. *made says how many were made, to clear. */
static int scrypt_identities(struct importer *im, const struct age_pass *pass, size_t n,
			     struct age_identity *id, size_t *made)
{
	int ret;

	for (*made = 0; *made < n; (*made)++) {
		ret = age_scrypt_identity(&id[*made], &pass[*made], im->max_logn);
		if (ret)
			return ret;
	}
	return 0;
}

/* The key work, one file at a time across the daemon: the keyring's
 * identities, then the passwords. The unseal lock is taken before the
 * vault's and the keyring's read locks, never inside them, so a change of
 * either waits for at most the one running unsealing. */
static int open_sealed(struct importer *im, const uint8_t *data, size_t len, uint8_t **pt,
		       size_t *ptlen, char *by, size_t by_size)
{
	char rec[AGE_IDENTITY_RECIPIENT_MAX];
	struct age_identity id[KEYRING_MAX + VAULT_PASS_MAX] = { 0 };
	struct age_pass pass[VAULT_PASS_MAX];
	size_t n, nid = 0, made = 0, i, which = 0;
	int ret;

	pthread_mutex_lock(&im->unseal_lock);
	n = vault_read_all(im->v, pass, VAULT_PASS_MAX, NULL);
	if (im->kr)
		nid = keyring_read(im->kr, id, KEYRING_MAX);
	ret = scrypt_identities(im, pass, n, id + nid, &made);
	if (!ret && !nid && !n)
		ret = -ENOKEY; /* nothing held at all */
	else if (!ret)
		ret = age_unseal_with(data, len, id, nid + n, pt, ptlen, &which);
	/* who made it: what opened it says who could have */
	if (!ret && which < nid && !age_identity_recipient(&id[which], rec, sizeof(rec)))
		snprintf(by, by_size, "recipient %s", rec);
	else if (!ret)
		snprintf(by, by_size, "a password");
	for (i = 0; i < made; i++)
		age_identity_clear(&id[nid + i]);
	if (im->kr)
		keyring_read_end(im->kr);
	vault_read_end(im->v);
	pthread_mutex_unlock(&im->unseal_lock);
	return ret;
}

/* Armored or binary age in, plaintext tar out (guarded memory). *logn
 * receives the file's work factor once it is known (else stays 0). */
static int unseal(struct importer *im, const uint8_t *data, size_t len, uint8_t **pt, size_t *ptlen,
		  int *logn, char *by, size_t by_size)
{
	uint8_t *bin = NULL;
	size_t bin_len;
	int ret;

	if (armor_detect(data, len)) {
		ret = armor_decode(data, len, &bin, &bin_len);
		/* An armored file cut short lost its END line: that is a
		 * damaged copy, not a foreign file. */
		if (ret == -EINVAL && !memmem(data, len, ARMOR_END, strlen(ARMOR_END)))
			ret = -EBADMSG;
		if (ret)
			return ret;
		data = bin;
		len = bin_len;
	}
	/* Refuse a work factor over the limit, and non-age input, before
	 * asking for any password: a 1 KiB file claiming logN 22 would
	 * otherwise cost 4 GiB and seconds of scrypt per password held. */
	ret = age_peek_logn(data, len);
	/* -EKEYREJECTED: no scrypt stanza within age's cap, so nothing a
	 * password opens, but maybe an identity (the scrypt identities
	 * refuse an over-cap stanza themselves, before any work). */
	if (ret < 0 && ret != -EKEYREJECTED)
		goto out;
	*logn = ret > 0 ? ret : 0;
	if (*logn > im->max_logn) {
		ret = -EKEYREJECTED;
		goto out;
	}
	if (im->ask)
		im->ask(im->ask_arg, NULL); /* a password provider, e.g. the agent */
	ret = open_sealed(im, data, len, pt, ptlen, by, by_size);
out:
	free(bin);
	return ret;
}

/* What an import of ks would do, as far as the active keys tell. */
static const char *would_do(struct importer *im, const struct keyset *ks, bool trusted)
{
	struct keyset cur = { 0 };
	const char *what;
	int ret;

	/* a program's keys as it gives them now (store_command.h) */
	if (store_command_is(im->st, ks->name))
		store_command_refresh(im->st, ks->name);
	ret = im->st->ops->read(im->st->priv, ks->name, &cur);
	/* a program's keys change only by activate's restore_command */
	if (store_command_is(im->st, ks->name) && (ret || !keyset_equal(&cur, ks)))
		what = "differs, becomes an inactive version (activate runs restore_command)";
	else if ((ret == -ENOENT || ret == -ENODATA || (!ret && cur.n == 0)) && !trusted)
		what = "new keyset, but unauthenticated: becomes an inactive version";
	else if (ret == -ENOENT || ret == -ENODATA || (!ret && cur.n == 0))
		what = "new keyset";
	else if (ret)
		what = "unknown, the active keys cannot be read";
	else if (keyset_equal(&cur, ks))
		what = "identical, nothing changes";
	else
		what = "differs, becomes an inactive version";
	keyset_clear(&cur);
	return what;
}

static void put_words(const char *name, const struct store_put *p, char *buf, size_t size)
{
	switch (p->outcome) {
	case STORE_CREATED:
		snprintf(buf, size, "restored (new keyset, active)");
		break;
	case STORE_UNCHANGED:
		snprintf(buf, size, "identical to the active keys, nothing changed");
		break;
	case STORE_KNOWN:
		snprintf(buf, size, "identical to inactive version %u, nothing changed", p->version);
		break;
	case STORE_VERSIONED:
		snprintf(buf, size, "differs from the active keys: stored as inactive version %u "
			 "(activate with \"activate %s %u\")", p->version, name, p->version);
		break;
	}
}

/* Logs and records why a file could not be opened or read. */
static void record_failure(struct importer *im, const char *what, int err, int logn)
{
	char hint[KEYSET_HINT_MAX + 1];

	if (err == -EKEYREJECTED && logn > im->max_logn) {
		record(im, LOG_WARNING, "%s failed: its work factor %d is above the limit %d "
		       "(import.max_work_factor); refused before any scrypt", what, logn, im->max_logn);
		return;
	}
	if (err != -EKEYREJECTED || meta_hint_for(im->state, NULL, hint, sizeof(hint)))
		hint[0] = '\0';
	record(im, LOG_WARNING, "%s failed: %s%s%s%s", what, in_words(err),
	       *hint ? " (password hint: " : "", hint, *hint ? ")" : "");
}

/* "; owners by number ..." when a recorded name does not exist here:
 * the number may now belong to another account. */
static void owner_words(const struct keyset_owner_report *r, char *buf, size_t size)
{
	*buf = '\0';
	if (!r->members)
		return;
	snprintf(buf, size, "; %zu member(s) restored with their recorded numbers: %s%s%s%s%s "
		 "unknown here", r->members, r->user[0] ? "user " : "", r->user,
		 r->user[0] && r->group[0] ? ", " : "", r->group[0] ? "group " : "", r->group);
}

int import_file(struct importer *im, bool verify_only, const uint8_t *data, size_t len)
{
	const char *what = verify_only ? "verify" : "import";
	char fpr[2 * BUNDLE_FPR_LEN + 1], words[256], more[256];
	char by[AGE_IDENTITY_RECIPIENT_MAX + 16] = "", who[SSHSIG_PRINCIPAL_MAX + 64] = "";
	bool trusted = false, marked, forged = false;
	struct bundle_proof proof = { 0 };
	char why[KEYSET_PATH_MAX * 2 + 128] = "";
	struct keyset_owner_report owners;
	struct keyset ks = { 0 };
	struct store_put put;
	uint8_t *pt = NULL;
	size_t ptlen = 0, at;
	int ret, logn = 0;

	if (!data) {
		record(im, LOG_WARNING, "%s failed: %s (%zu bytes)", what, in_words(-EFBIG), len);
		count(im, verify_only, IMPORT_TOO_LARGE);
		return -EFBIG;
	}
	ret = unseal(im, data, len, &pt, &ptlen, &logn, by, sizeof(by));
	if (!ret)
		ret = bundle_unpack_proof(pt, ptlen, STORE_MEMBER_MAX, &ks, &proof, why, sizeof(why));
	/* before anything here changes the owners or modes it lists */
	if (!ret && (ret = import_signature(im->sign, im->signers, &ks, &proof, who, sizeof(who),
					    &trusted))) {
		record(im, LOG_WARNING, "%s \"%s\" failed: forged or damaged: %s; nothing changed",
		       what, ks.name, who);
		forged = true;
		goto out;
	}
	/* a passphrase seal opened by keyfs' own password vouches too:
	 * only its holders could have made it */
	trusted = trusted || !strcmp(by, "a password");
	if (!ret && !trusted && !verify_only && im->refuse_unauthenticated) {
		record(im, LOG_WARNING, "import \"%s\" refused: unauthenticated (sealed to recipients, "
		       "%s) and import.unauthenticated = refuse; nothing changed", ks.name, who);
		ret = -EKEYREJECTED;
		goto out;
	}
	if (!ret) {
		keyset_owners_local(&ks, &owners);
		store_live_apply(im->st, &ks);
	}
	if (ret == -EINVAL && *why) {
		record(im, LOG_WARNING, "%s failed: an unsafe tar: %s", what, why);
		goto out;
	}
	if (ret) {
		record_failure(im, what, ret, logn);
		goto out;
	}
	/* The fingerprint of what is restored (modes as the keystore
	 * applies them), the same as KEYSET.ini of its next export. */
	bundle_fingerprint(&ks, fpr);
	if (verify_only) {
		owner_words(&owners, words, sizeof(words));
		record(im, LOG_NOTICE, "verify \"%s\": good copy, %zu key files, fingerprint %s, "
		       "sealed by %s, %s%s; on import: %s%s", ks.name, ks.n, fpr, by, who,
		       trusted ? "" : ", unauthenticated", would_do(im, &ks, trusted), words);
		goto out;
	}
	/* a version activate must not install unasked: marked by the store */
	ret = trusted ? store_put(im->st, &ks, &put) : store_put_inactive(im->st, &ks, fpr, &put);
	marked = !ret && !trusted && (put.outcome == STORE_VERSIONED || put.outcome == STORE_KNOWN);
	if (ret == -EPERM) {
		/* refused before anything was written: say what to do */
		record(im, LOG_ERR, "import \"%s\" failed: its files belong to another user; "
		       "only keyfs running as root can restore them", ks.name);
		goto out;
	}
	if (ret == -EACCES) {
		/* the store logged which directory */
		record(im, LOG_ERR, "import \"%s\" refused before anything was written: a directory "
		       "it would be restored into can be changed by a user other than root and the "
		       "keys' owner", ks.name);
		goto out;
	}
	if (ret == -EINVAL || ret == -EFBIG) {
		/* a live keyset's archive with a member it does not select */
		record(im, LOG_ERR, "import \"%s\" refused before anything was written: %s",
		       ks.name, ret == -EINVAL ? "a member is not one of the keyset's files "
		       "(include/exclude, or a link leaving it)" : "a member over max_file_size");
		goto out;
	}
	if (ret) {
		record(im, LOG_ERR, "import \"%s\" failed: writing the keystore: %s", ks.name, strerror(-ret));
		ret = -EIO;
		goto out;
	}
	put_words(ks.name, &put, words, sizeof(words));
	owner_words(&owners, more, sizeof(more));
	if (put.made) {
		at = strlen(words);
		snprintf(words + at, sizeof(words) - at, "; %u missing director%s made (see the "
			 "log)", put.made, put.made == 1 ? "y" : "ies");
	}
	record(im, owners.members ? LOG_WARNING : LOG_NOTICE, "import \"%s\": %s, fingerprint %s, "
	       "%s%s%s", ks.name, words, fpr, who, marked ? ", unauthenticated: activate only with "
	       "--unauthenticated, once its fingerprint is checked" : trusted ? "" :
	       ", unauthenticated", more);
out:
	bundle_proof_free(&proof);
	count(im, verify_only, forged ? IMPORT_FORGED : !ret && !trusted ?
	      IMPORT_UNAUTHENTICATED : outcome_of(ret));
	keyset_clear(&ks);
	if (pt)
		sodium_free(pt);
	return ret;
}

/* An unknown keyset: the keysets there are, the first few by name. */
static void keysets_words(struct importer *im, const char *name, char *buf, size_t size)
{
	size_t i, n, len;
	char **names;

	if (im->st->ops->list(im->st->priv, &names, &n)) {
		snprintf(buf, size, "no keyset \"%s\"", name);
		return;
	}
	len = (size_t)snprintf(buf, size, "no keyset \"%s\"; keysets:", name);
	for (i = 0; i < n && i < 8 && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, " %s", names[i]);
	if (i < n && len < size)
		snprintf(buf + len, size - len, " and %zu more", n - i);
	store_list_free(names);
}

/* What activate could have named: the keyset's inactive versions. */
static void versions_words(struct importer *im, const char *name, char *buf, size_t size)
{
	size_t i, n, len;
	uint64_t stamp;
	unsigned *v;

	if (im->st->ops->stamp(im->st->priv, name, &stamp) == -ENOENT) {
		keysets_words(im, name, buf, size);
		return;
	}
	if (store_versions(im->st, name, &v, &n) || n == 0) {
		snprintf(buf, size, "no such version; keyset \"%s\" has no inactive version", name);
		return;
	}
	len = (size_t)snprintf(buf, size, "no such version; inactive versions of \"%s\":", name);
	for (i = 0; i < n && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, " %u", v[i]);
	free(v);
}

int import_activate(struct importer *im, const char *name, unsigned version, bool unauthenticated)
{
	char words[768], fpr[2 * BUNDLE_FPR_LEN + 8];
	unsigned kept;
	int ret;

	if (!unauthenticated && store_live_unauthenticated(im->st, name, version, fpr, sizeof(fpr))) {
		record(im, LOG_WARNING, "activate \"%s\" version %u refused: it came from an "
		       "unauthenticated backup (fingerprint %s); once that fingerprint is checked, "
		       "activate it with --unauthenticated", name, version, fpr);
		return -EKEYREJECTED;
	}
	ret = store_activate(im->st, name, version, &kept);
	if (ret == -ECHILD && store_command_is(im->st, name)) {
		/* nothing went in: the version stays what it was */
		if (store_command_restore_words(im->st, name, words, sizeof(words)))
			snprintf(words, sizeof(words), "see the status");
		record(im, LOG_ERR, "activate \"%s\" version %u failed: %s; it stays an inactive "
		       "version", name, version, words);
		return ret;
	}
	if (ret == 0 || ret == -ECHILD)
		store_live_unmark(im->st, name, version); /* active now, whoever made it */
	if (ret == -ECHILD) {
		if (store_live_hook_words(im->st, name, words, sizeof(words)))
			snprintf(words, sizeof(words), "see the status");
		record(im, LOG_ERR, "activate \"%s\": version %u is installed, but on_activate "
		       "failed: %s", name, version, words);
		return ret;
	}
	if (ret == -ENOENT) {
		versions_words(im, name, words, sizeof(words));
		record(im, LOG_WARNING, "activate \"%s\" version %u failed: %s", name,
		       version, words);
		return ret;
	}
	if (ret) {
		record(im, LOG_WARNING, "activate \"%s\" version %u failed: %s", name, version,
		       strerror(-ret));
		return ret;
	}
	if (kept)
		record(im, LOG_NOTICE, "activate \"%s\": version %u is active; the replaced keys are kept as version %u",
		       name, version, kept);
	else
		record(im, LOG_NOTICE, "activate \"%s\": version %u is active", name, version);
	return 0;
}
