/* Unit tests for ctl_command(): each verb's effect on the vault or the
 * store, every refusal, and that the log never carries a password.
 * The store is a small in-memory implementation of the store.h
 * interface (only meta_get/meta_set are reachable from ctl_command). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/config.h"
#include "keyfs/control.h"
#include "keyfs/secret.h"
#include "keyfs/store.h"
#include "tap.h"

/* ---- in-memory store: one meta key, calls recorded ---- */

struct memstore {
	char key[64];
	char value[STORE_META_MAX];
	bool set;		/* a value is stored */
	int calls;		/* meta_set calls */
	char last_key[64];
	char last_value[STORE_META_MAX];
	int fail;		/* meta_set returns this when non-zero */
};

static int mem_list(void *priv, char ***names, size_t *n)
{
	(void)priv;
	*names = NULL;
	*n = 0;
	return 0;
}

static int mem_stamp(void *priv, const char *name, uint64_t *stamp)
{
	(void)priv;
	(void)name;
	*stamp = 0;
	return -ENOENT;
}

static int mem_read(void *priv, const char *name, struct keyset *ks)
{
	(void)priv;
	(void)name;
	(void)ks;
	return -ENOENT;
}

static int mem_meta_get(void *priv, const char *key, char *buf, size_t size)
{
	struct memstore *m = priv;

	if (!m->set || strcmp(key, m->key))
		return -ENOENT;
	snprintf(buf, size, "%s", m->value);
	return 0;
}

static int mem_meta_set(void *priv, const char *key, const char *value)
{
	struct memstore *m = priv;

	m->calls++;
	snprintf(m->last_key, sizeof(m->last_key), "%s", key);
	snprintf(m->last_value, sizeof(m->last_value), "%s", value);
	if (m->fail)
		return m->fail;
	snprintf(m->key, sizeof(m->key), "%s", key);
	snprintf(m->value, sizeof(m->value), "%s", value);
	m->set = *value != '\0';
	return 0;
}

static void mem_destroy(void *priv)
{
	(void)priv;
}

static const struct store_ops mem_ops = {
	.list = mem_list,
	.stamp = mem_stamp,
	.read = mem_read,
	.meta_get = mem_meta_get,
	.meta_set = mem_meta_set,
	.destroy = mem_destroy,
};

/* ---- running commands ---- */

static char logbuf[8192];

/* Runs one command of len bytes the way fs.c does: a private copy one
 * byte longer than the write. stderr (the log, in the foreground) is
 * captured into logbuf. */
static int run_len(struct ctl *c, const char *cmd, size_t len)
{
	char *buf = malloc(len + 1);
	int fd, saved, ret;
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, cmd, len);
	buf[len] = 'Z'; /* not a NUL: nothing may rely on one */
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	fd = memfd_create("log", 0);
	dup2(fd, STDERR_FILENO);
	ret = ctl_command(c, buf, len);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, logbuf, sizeof(logbuf) - 1, 0);
	logbuf[n > 0 ? n : 0] = '\0';
	close(fd);
	/* Echo the log into the test output as TAP comments. */
	for (const char *p = logbuf, *nl; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		if (!nl)
			break;
		printf("# %.*s\n", (int)(nl - p), p);
	}
	free(buf);
	return ret;
}

static int run(struct ctl *c, const char *cmd)
{
	return run_len(c, cmd, strlen(cmd));
}

static bool backup_is(struct vault *v, const char *want)
{
	struct age_pass p;
	uint64_t g;
	bool same;

	if (vault_read_backup(v, &p, &g))
		return want == NULL;
	same = want && p.len == strlen(want) && !memcmp(p.p, want, p.len);
	vault_read_end(v);
	return same;
}

static bool unlocks_are(struct vault *v, const char *const *want, size_t nwant)
{
	struct age_pass pass[VAULT_SLOTS];
	/* Counted before the read lock: a nested read lock could wait
	 * behind a writer. */
	size_t nunlock = vault_unlock_count(v);
	size_t n, i, first;
	bool ok;

	n = vault_read(v, pass, NULL);
	first = n - nunlock;
	ok = n - first == nwant;
	for (i = 0; ok && i < nwant; i++)
		ok = pass[first + i].len == strlen(want[i]) && !memcmp(pass[first + i].p, want[i], pass[first + i].len);
	vault_read_end(v);
	return ok;
}

static bool log_has(const char *s)
{
	return strstr(logbuf, s) != NULL;
}

static void test_password(struct ctl *c)
{
	uint64_t g;

	TAP_EQ_INT(run(c, "password Abcdefg1!\n"), 0, "password Abcdefg1!\\n");
	tap_ok(backup_is(c->v, "Abcdefg1!"), "the vault holds the password, newline stripped");
	tap_ok(!log_has("Abcdefg1!"), "the log does not carry the password");
	tap_ok(log_has("cannot be recovered"), "setting a password says it cannot be recovered");

	g = vault_generation(c->v);
	TAP_EQ_INT(run(c, "password Zyxwvut9?"), 0, "password without a trailing newline");
	tap_ok(backup_is(c->v, "Zyxwvut9?"), "the new password replaced the old one");
	TAP_EQ_INT(vault_generation(c->v), g + 1, "the generation moved once");

	g = vault_generation(c->v);
	TAP_EQ_INT(run(c, "password weakpass\n"), -EINVAL, "a weak password: -EINVAL");
	tap_ok(backup_is(c->v, "Zyxwvut9?"), "weak password: vault unchanged");
	TAP_EQ_INT(vault_generation(c->v), g, "weak password: generation unchanged");
	tap_ok(log_has("upper-case"), "weak password: the log says why");
	tap_ok(!log_has("weakpass"), "weak password: the log does not carry it");

	TAP_EQ_INT(run(c, "password Abc1!\n"), -EINVAL, "a short password: -EINVAL");
	TAP_EQ_INT(run(c, "password\n"), -EINVAL, "password with nothing: -EINVAL");
	TAP_EQ_INT(run(c, "password \n"), -EINVAL, "password with an empty argument: -EINVAL");
	TAP_EQ_INT(run(c, "password Abcdefg1!\n\n"), -EINVAL, "only one trailing newline is stripped");
	TAP_EQ_INT(run(c, "password Abcdefg1!\r\n"), -EINVAL, "CRLF: the CR is a control character");
	TAP_EQ_INT(run(c, "passwordX\n"), -EINVAL, "passwordX: -EINVAL");
	TAP_EQ_INT(run(c, "passwordAbcdefg1!\n"), -EINVAL, "password glued to the verb: -EINVAL");
	tap_ok(!log_has("Abcdefg1!"), "an unknown command is not logged (it may be a password)");
	TAP_EQ_INT(run(c, "Password Abcdefg1!\n"), -EINVAL, "verbs are case-sensitive");
	TAP_EQ_INT(run(c, "password\tAbcdefg1!\n"), -EINVAL, "a tab is not the separator");
	tap_ok(backup_is(c->v, "Zyxwvut9?"), "after all refusals the vault is unchanged");
	TAP_EQ_INT(vault_generation(c->v), g, "after all refusals the generation is unchanged");

	/* A NUL byte inside, even one that would leave a valid prefix. */
	TAP_EQ_INT(run_len(c, "password Abcdefg1!\0xyz\n", 23), -EINVAL, "NUL inside password: -EINVAL");
	TAP_EQ_INT(run_len(c, "password Abcdefg1!\0", 19), -EINVAL, "trailing NUL: -EINVAL");
	TAP_EQ_INT(run_len(c, "\0password Abcdefg1!", 19), -EINVAL, "leading NUL: -EINVAL");
	tap_ok(log_has("NUL"), "the log names the NUL byte");
	tap_ok(backup_is(c->v, "Zyxwvut9?"), "NUL commands left the vault unchanged");

	/* UTF-8: 8 characters in 12 bytes. */
	TAP_EQ_INT(run(c, "password Ab\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4" "1!\n"), 0, "a UTF-8 password");
	tap_ok(backup_is(c->v, "Ab\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4" "1!"), "the UTF-8 password is stored byte for byte");
}

static void test_length(struct ctl *c)
{
	char *big = malloc(CTL_COMMAND_MAX + 2);
	uint64_t g = vault_generation(c->v);

	if (!big)
		return;
	/* "unlock aaaa…": length alone decides before any verb. */
	memset(big, 'a', CTL_COMMAND_MAX + 1);
	memcpy(big, "unlock ", 7);
	TAP_EQ_INT(run_len(c, big, CTL_COMMAND_MAX), -EINVAL, "a command of CTL_COMMAND_MAX bytes: -EINVAL");
	tap_ok(log_has("command refused: too long"), "refused for its length");
	TAP_EQ_INT(run_len(c, big, CTL_COMMAND_MAX + 1), -EINVAL, "CTL_COMMAND_MAX + 1 bytes: -EINVAL");
	tap_ok(log_has("command refused: too long"), "refused for its length");
	TAP_EQ_INT(run_len(c, big, CTL_COMMAND_MAX - 1), -EINVAL, "CTL_COMMAND_MAX - 1 bytes: refused by unlock");
	tap_ok(!log_has("command refused") && log_has("unlock password refused"), "... by the verb, not for the command length");
	big[CTL_COMMAND_MAX] = '\n';
	TAP_EQ_INT(run_len(c, big, CTL_COMMAND_MAX + 1), -EINVAL, "CTL_COMMAND_MAX bytes plus a newline: -EINVAL");
	tap_ok(log_has("command refused: too long"), "refused for its length");
	/* unlock's own limit: SECRET_PW_MAX bytes of password. */
	TAP_EQ_INT(run_len(c, big, 7 + SECRET_PW_MAX + 1), -EINVAL, "unlock of 129 bytes: -EINVAL");
	TAP_EQ_INT(vault_unlock_count(c->v), 0, "nothing added");
	TAP_EQ_INT(run_len(c, big, 7 + SECRET_PW_MAX), 0, "unlock of 128 bytes");
	TAP_EQ_INT(vault_unlock_count(c->v), 1, "one unlock password added");
	TAP_EQ_INT(vault_generation(c->v), g, "unlock does not move the generation");
	vault_forget(c->v);
	free(big);
}

static void test_unlock_forget(struct ctl *c)
{
	static const char *const two[] = { "x", "old pass" };
	static const char *const one[] = { "x" };

	run(c, "password Abcdefg1!\n");
	TAP_EQ_INT(run(c, "unlock x\n"), 0, "unlock x");
	TAP_EQ_INT(vault_unlock_count(c->v), 1, "one unlock password");
	tap_ok(unlocks_are(c->v, one, 1), "the unlock password is \"x\"");
	tap_ok(backup_is(c->v, "Abcdefg1!"), "unlock leaves the backup password alone");
	TAP_EQ_INT(run(c, "unlock old pass\n"), 0, "unlock with a space inside (no policy)");
	tap_ok(unlocks_are(c->v, two, 2), "both unlock passwords held, in order");
	TAP_EQ_INT(run(c, "unlock x\n"), 0, "unlock x again");
	TAP_EQ_INT(vault_unlock_count(c->v), 2, "kept once");
	TAP_EQ_INT(run(c, "unlock\n"), -EINVAL, "unlock with nothing: -EINVAL");
	TAP_EQ_INT(run(c, "unlock \n"), -EINVAL, "unlock with an empty argument: -EINVAL");
	TAP_EQ_INT(run(c, "unlock a\tb\n"), -EINVAL, "unlock with a control character: -EINVAL");
	TAP_EQ_INT(run(c, "unlock a\x7f\n"), -EINVAL, "unlock with DEL: -EINVAL");
	TAP_EQ_INT(run(c, "unlockx\n"), -EINVAL, "unlockx: -EINVAL");
	TAP_EQ_INT(vault_unlock_count(c->v), 2, "refusals added nothing");
	tap_ok(!log_has("old pass"), "the log does not carry unlock passwords");

	TAP_EQ_INT(run(c, "forget now\n"), -EINVAL, "forget with an argument: -EINVAL");
	tap_ok(vault_has_password(c->v) && vault_unlock_count(c->v) == 2, "... and forgot nothing");
	TAP_EQ_INT(run(c, "forgetx\n"), -EINVAL, "forgetx: -EINVAL");
	TAP_EQ_INT(run(c, "forget\n"), 0, "forget");
	tap_ok(!vault_has_password(c->v), "forget wiped the backup password");
	TAP_EQ_INT(vault_unlock_count(c->v), 0, "forget wiped the unlock passwords");
	TAP_EQ_INT(run(c, "forget"), 0, "forget without a newline, on an empty vault");
}

static void test_hint(struct ctl *c, struct memstore *m)
{
	char buf[STORE_META_MAX], text[KEYSET_HINT_MAX + 8];
	int calls;

	TAP_EQ_INT(run(c, "hint some text\n"), 0, "hint some text");
	TAP_EQ_INT(m->calls, 1, "hint calls meta_set once");
	tap_ok(!strcmp(m->last_key, "hint") && !strcmp(m->last_value, "some text"),
	       "meta_set(\"hint\", \"some text\") (got \"%s\", \"%s\")", m->last_key, m->last_value);
	tap_ok(!c->st->ops->meta_get(c->st->priv, "hint", buf, sizeof(buf)) && !strcmp(buf, "some text"),
	       "the hint reads back");

	TAP_EQ_INT(run(c, "hint\n"), 0, "hint alone");
	tap_ok(m->calls == 2 && !strcmp(m->last_key, "hint") && !strcmp(m->last_value, ""),
	       "hint alone calls meta_set(\"hint\", \"\")");
	TAP_EQ_INT(c->st->ops->meta_get(c->st->priv, "hint", buf, sizeof(buf)), -ENOENT, "the hint is cleared");
	TAP_EQ_INT(run(c, "hint x"), 0, "hint without a newline");
	tap_ok(m->calls == 3 && !strcmp(m->last_value, "x"), "hint value without a newline is exact");
	TAP_EQ_INT(run(c, "hint"), 0, "hint alone without a newline");
	tap_ok(m->calls == 4 && !strcmp(m->last_value, ""), "... clears");
	TAP_EQ_INT(run(c, "hint   spaced  out "), 0, "hint keeps inner and trailing spaces");
	tap_ok(!strcmp(m->last_value, "  spaced  out "), "hint value kept as written (\"%s\")", m->last_value);
	TAP_EQ_INT(run(c, "hint caf\xc3\xa9\n"), 0, "a UTF-8 hint");

	calls = m->calls;
	TAP_EQ_INT(run(c, "hint a\x01z\n"), -EINVAL, "hint with a control character: -EINVAL");
	TAP_EQ_INT(run(c, "hint a\nb\n"), -EINVAL, "hint with an inner newline: -EINVAL");
	TAP_EQ_INT(run(c, "hint \x1b[31mred\n"), -EINVAL, "hint with an escape sequence: -EINVAL");
	TAP_EQ_INT(run_len(c, "hint a\0b\n", 9), -EINVAL, "hint with a NUL: -EINVAL");
	TAP_EQ_INT(run(c, "hintx\n"), -EINVAL, "hintx: -EINVAL");
	memset(text, 'h', sizeof(text));
	memcpy(text, "hint ", 5);
	TAP_EQ_INT(run_len(c, text, 5 + KEYSET_HINT_MAX + 1), -EINVAL, "a hint over KEYSET_HINT_MAX: -EINVAL");
	TAP_EQ_INT(m->calls, calls, "refused hints never reach the store");
	TAP_EQ_INT(run_len(c, text, 5 + KEYSET_HINT_MAX), 0, "a hint of exactly KEYSET_HINT_MAX");
	TAP_EQ_INT(strlen(m->last_value), KEYSET_HINT_MAX, "... stored whole");

	m->fail = -EIO;
	TAP_EQ_INT(run(c, "hint new\n"), -EIO, "a failing store: the error comes back unchanged");
	m->fail = 0;
}

/* activate reaches the importer only with a valid name and version;
 * c->im is NULL here, so only refusals may be tried. */
static void test_activate_usage(struct ctl *c)
{
	TAP_EQ_INT(run(c, "activate\n"), -EINVAL, "activate with nothing: -EINVAL");
	tap_ok(log_has("usage: activate"), "the log gives the usage");
	TAP_EQ_INT(run(c, "activate keys\n"), -EINVAL, "activate without a version: -EINVAL");
	TAP_EQ_INT(run(c, "activate keys 0\n"), -EINVAL, "activate version 0: -EINVAL");
	TAP_EQ_INT(run(c, "activate keys 1 2\n"), -EINVAL, "activate with an extra word: -EINVAL");
	TAP_EQ_INT(run(c, "activate keys 1x\n"), -EINVAL, "activate with a bad version: -EINVAL");
	TAP_EQ_INT(run(c, "activate ../x 1\n"), -EINVAL, "activate \"../x\": -EINVAL");
	TAP_EQ_INT(run(c, "activate .keyfs 1\n"), -EINVAL, "activate \".keyfs\": -EINVAL");
	TAP_EQ_INT(run(c, "activatex keys 1\n"), -EINVAL, "activatex: -EINVAL");
}

static void test_unknown(struct ctl *c)
{
	TAP_EQ_INT(run(c, "reset\n"), -EINVAL, "unknown verb: -EINVAL");
	tap_ok(log_has("unknown command"), "the log says unknown command");
	TAP_EQ_INT(run(c, "\n"), -EINVAL, "an empty line: -EINVAL");
	TAP_EQ_INT(run_len(c, "", 0), -EINVAL, "an empty write: -EINVAL");
	TAP_EQ_INT(run(c, " password Abcdefg1!\n"), -EINVAL, "a leading space: -EINVAL");
	TAP_EQ_INT(run(c, "Abcdefg1!\n"), -EINVAL, "a bare password: -EINVAL");
	tap_ok(!log_has("Abcdefg1!"), "a bare password is not logged");
}


/* ---- the observer: told of every change, and only of changes ---- */

struct seen {
	int secrets;		/* secrets_changed calls */
	int hints;		/* hints_changed calls */
	int fail;		/* secrets_changed returns this */
};

static int seen_secrets(void *arg)
{
	struct seen *s = arg;

	s->secrets++;
	return s->fail;
}

static void seen_hints(void *arg)
{
	struct seen *s = arg;

	s->hints++;
}

static void test_observer(struct ctl *c, struct memstore *m)
{
	struct seen s = { 0 };

	c->obs = (struct ctl_observer){ seen_secrets, seen_hints, &s };
	TAP_EQ_INT(run(c, "password Abcdefg1!\n"), 0, "password, observed");
	tap_ok(s.secrets == 1 && s.hints == 0, "secrets_changed once (%d, %d)", s.secrets, s.hints);
	TAP_EQ_INT(run(c, "password weak\n"), -EINVAL, "a refused password");
	TAP_EQ_INT(s.secrets, 1, "... is no change");
	TAP_EQ_INT(run(c, "password --keyset web Abcdefg2!\n"), 0, "password --keyset web");
	TAP_EQ_INT(s.secrets, 2, "... is a change");
	TAP_EQ_INT(run(c, "unlock x\n"), 0, "unlock");
	TAP_EQ_INT(s.secrets, 2, "... seals nothing: not told");
	TAP_EQ_INT(run(c, "forget --keyset web\n"), 0, "forget --keyset web");
	TAP_EQ_INT(s.secrets, 3, "... is a change");
	TAP_EQ_INT(run(c, "forget\n"), 0, "forget");
	TAP_EQ_INT(s.secrets, 4, "... is a change");
	TAP_EQ_INT(run(c, "forget --keyset ../x\n"), -EINVAL, "forget with a bad keyset");
	TAP_EQ_INT(s.secrets, 4, "... is no change");
	tap_ok(log_has("control: --keyset needs a valid keyset name") &&
	       log_has("control: usage: forget [--keyset KEYSET]"), "... and says why, with forget's usage");

	/* The observer's error is the writer's, the password set all the same. */
	s.fail = -EIO;
	TAP_EQ_INT(run(c, "password Zyxwvut9?\n"), -EIO, "a failing observer: its error comes back");
	tap_ok(backup_is(c->v, "Zyxwvut9?"), "... and the password is set");
	TAP_EQ_INT(run(c, "forget\n"), -EIO, "forget with a failing observer: its error");
	s.fail = 0;

	TAP_EQ_INT(run(c, "hint the red one\n"), 0, "hint, observed");
	tap_ok(s.hints == 1 && s.secrets == 6, "hints_changed once (%d, %d)", s.hints, s.secrets);
	TAP_EQ_INT(run(c, "hint a\x01z\n"), -EINVAL, "a refused hint");
	TAP_EQ_INT(s.hints, 1, "... is no change");
	m->fail = -EIO;
	TAP_EQ_INT(run(c, "hint new\n"), -EIO, "a hint the store cannot keep");
	TAP_EQ_INT(s.hints, 1, "... is no change");
	m->fail = 0;

	/* A --keyset name over KEYSET_NAME_MAX is refused with its reason. */
	TAP_EQ_INT(run(c, "password --keyset k1234567890123456789012345678901234567890123456789012345678901234 "
		       "Abcdefg1!\n"), -EINVAL, "a 65-byte --keyset name");
	tap_ok(log_has("--keyset needs a valid keyset name"), "... the log says why");
	c->obs = (struct ctl_observer){ 0 };
	vault_forget(c->v);
}

int main(void)
{
	struct memstore m = { 0 };
	struct store st = { .ops = &mem_ops, .priv = &m };
	struct config cfg;
	struct ctl c = { 0 };

	if (sodium_init() < 0) {
		tap_ok(false, "sodium_init");
		return tap_done();
	}
	/* test_control links control.c and secret.c, not config.c: the
	 * policy fields at their documented defaults. */
	memset(&cfg, 0, sizeof(cfg));
	cfg.policy = POLICY_COMPLEX;
	cfg.min_length = 8;
	c.cfg = &cfg;
	c.st = &st;
	if (!tap_ok(vault_new(&c.v) == 0, "vault_new"))
		return tap_done();

	test_password(&c);
	vault_forget(c.v);
	test_length(&c);
	test_unlock_forget(&c);
	test_hint(&c, &m);
	test_activate_usage(&c);
	test_unknown(&c);
	test_observer(&c, &m);
	vault_free(c.v);
	return tap_done();
}
