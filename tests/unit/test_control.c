/* Unit tests for ctl_command(): each verb's effect on the vault or the
 * store, every refusal, and that the log never carries a password.
 * Hints and marks go to a real state directory (meta.h) in a temporary
 * place. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/config.h"
#include "keyfs/control.h"
#include "keyfs/meta.h"
#include "keyfs/store.h"
#include "keyfs/vault.h"

#include "tap.h"

/* ---- a real state directory in a temporary place ---- */

static struct state state;
static char state_path[64];

/* The stored value of key, "" if unset. */
static const char *stored(const char *key)
{
	static char buf[META_VALUE_MAX];

	if (meta_get(&state, key, buf, sizeof(buf)))
		buf[0] = '\0';
	return buf;
}

/* A state whose metadata cannot be written: meta/ is a file. */
static void break_meta(bool broken)
{
	if (broken) {
		renameat(state.fd, STATE_META, state.fd, "meta.off");
		close(openat(state.fd, STATE_META, O_WRONLY | O_CREAT, 0600));
	} else {
		unlinkat(state.fd, STATE_META, 0);
		renameat(state.fd, "meta.off", state.fd, STATE_META);
	}
}

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

static void test_hint(struct ctl *c)
{
	char text[KEYSET_HINT_MAX + 8];

	TAP_EQ_INT(run(c, "hint some text\n"), 0, "hint some text");
	tap_ok(!strcmp(stored("hint"), "some text"), "the hint reads back (\"%s\")", stored("hint"));

	TAP_EQ_INT(run(c, "hint\n"), 0, "hint alone");
	TAP_EQ_INT(meta_hint(&state, NULL, text, sizeof(text)), -ENOENT, "the hint is cleared");
	TAP_EQ_INT(run(c, "hint x"), 0, "hint without a newline");
	tap_ok(!strcmp(stored("hint"), "x"), "hint value without a newline is exact");
	TAP_EQ_INT(run(c, "hint"), 0, "hint alone without a newline");
	tap_ok(!strcmp(stored("hint"), ""), "... clears");
	TAP_EQ_INT(run(c, "hint   spaced  out "), 0, "hint keeps inner and trailing spaces");
	tap_ok(!strcmp(stored("hint"), "  spaced  out "), "hint value kept as written (\"%s\")",
	       stored("hint"));
	TAP_EQ_INT(run(c, "hint caf\xc3\xa9\n"), 0, "a UTF-8 hint");

	TAP_EQ_INT(run(c, "hint a\x01z\n"), -EINVAL, "hint with a control character: -EINVAL");
	TAP_EQ_INT(run(c, "hint a\nb\n"), -EINVAL, "hint with an inner newline: -EINVAL");
	TAP_EQ_INT(run(c, "hint \x1b[31mred\n"), -EINVAL, "hint with an escape sequence: -EINVAL");
	TAP_EQ_INT(run_len(c, "hint a\0b\n", 9), -EINVAL, "hint with a NUL: -EINVAL");
	TAP_EQ_INT(run(c, "hintx\n"), -EINVAL, "hintx: -EINVAL");
	memset(text, 'h', sizeof(text));
	memcpy(text, "hint ", 5);
	TAP_EQ_INT(run_len(c, text, 5 + KEYSET_HINT_MAX + 1), -EINVAL, "a hint over KEYSET_HINT_MAX: -EINVAL");
	tap_ok(!strcmp(stored("hint"), "caf\xc3\xa9"), "refused hints never reach the state");
	TAP_EQ_INT(run_len(c, text, 5 + KEYSET_HINT_MAX), 0, "a hint of exactly KEYSET_HINT_MAX");
	TAP_EQ_INT(strlen(stored("hint")), KEYSET_HINT_MAX, "... stored whole");

	break_meta(true);
	TAP_EQ_INT(run(c, "hint new\n"), -ENOTDIR, "a failing state: the error comes back unchanged");
	break_meta(false);
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

static void test_observer(struct ctl *c)
{
	struct seen s = { 0 };

	c->obs = (struct ctl_observer){ seen_secrets, seen_hints, &s, NULL };
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
	break_meta(true);
	TAP_EQ_INT(run(c, "hint new\n"), -ENOTDIR, "a hint the state cannot keep");
	TAP_EQ_INT(s.hints, 1, "... is no change");
	break_meta(false);

	/* A --keyset name over KEYSET_NAME_MAX is refused with its reason. */
	TAP_EQ_INT(run(c, "password --keyset k1234567890123456789012345678901234567890123456789012345678901234 "
		       "Abcdefg1!\n"), -EINVAL, "a 65-byte --keyset name");
	tap_ok(log_has("--keyset needs a valid keyset name"), "... the log says why");
	c->obs = (struct ctl_observer){ 0 };
	vault_forget(c->v);
}

int main(void)
{
	struct store st = { 0 };
	struct config cfg;
	struct ctl c = { 0 };

	if (sodium_init() < 0) {
		tap_ok(false, "sodium_init");
		return tap_done();
	}
	/* test_control needs no config.c (the state area): the
	 * policy fields at their documented defaults. */
	memset(&cfg, 0, sizeof(cfg));
	cfg.policy = POLICY_COMPLEX;
	cfg.min_length = 8;
	c.cfg = &cfg;
	c.st = &st;
	snprintf(state_path, sizeof(state_path), "/tmp/keyfs-test-control.XXXXXX");
	if (!tap_ok(mkdtemp(state_path) && !state_open(&state, state_path), "a state directory"))
		return tap_done();
	c.state = &state;
	if (!tap_ok(vault_new(&c.v) == 0, "vault_new"))
		return tap_done();

	test_password(&c);
	vault_forget(c.v);
	test_length(&c);
	test_unlock_forget(&c);
	test_hint(&c);
	test_activate_usage(&c);
	test_unknown(&c);
	test_observer(&c);
	vault_free(c.v);
	state_close(&state);
	tap_ok(!system("rm -rf /tmp/keyfs-test-control.*"), "state directory removed");
	return tap_done();
}
