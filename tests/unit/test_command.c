/* Unit tests for command.c, the table of .control commands: the rows
 * themselves, command_parse() and command_format(), and that what
 * keyfsctl checks before sending (command_format() then command_parse())
 * is exactly what ctl_command() in the daemon accepts or refuses, with
 * the same reason in the daemon's log. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/command.h"
#include "keyfs/control.h"
#include "keyfs/keyring.h"
#include "keyfs/policy.h"
#include "keyfs/store.h"
#include "keyfs/vault.h"

#include "tap.h"

/* age.key of tests/vectors/keys, and its public key. */
#define AGE_KEY "AGE-SECRET-KEY-1DLDCGM8W4SSFLXJ0Z9AK33NW0J2DTPEFLR4YT7VGZDHWSH8V0VDSY4CLHV"
#define AGE_PUB "age1ws0c709qz5lexlgvzwg0c2eafdwcm48cf7nf8lrz3gu0khkhnvtq7ec7uf"

/* ---- an in-memory store: metadata always stored, no versions ---- */

static int mem_activate(void *priv, const char *name, unsigned version, unsigned *kept)
{
	(void)priv;
	(void)name;
	(void)version;
	*kept = 0;
	return -ENOENT;
}

/* No keysets: an activate names none. */
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

static void mem_destroy(void *priv)
{
	(void)priv;
}

static const struct store_ops mem_ops = {
	.list = mem_list,
	.stamp = mem_stamp,
	.activate = mem_activate,
	.destroy = mem_destroy,
};

/* ---- the daemon's side ---- */

static char logbuf[8192];

/* ctl_command() on a private copy one byte longer, the log captured. */
static int daemon_run(struct ctl *c, const char *cmd, size_t len)
{
	char *buf = malloc(len + 1);
	int fd, saved, ret;
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, cmd, len);
	buf[len] = 'Z';
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
	free(buf);
	return ret;
}

/* Whether text is an identity file age_keys_identities() takes. */
static bool keys(const char *text, size_t len)
{
	struct age_identity_list l;

	if (age_keys_identities(&l, text, len, NULL, 0))
		return false;
	age_identity_list_free(&l);
	return true;
}

/* The daemon and the parser agree on cmd: a refusal by the parser is
 * -EINVAL from the daemon with the parser's reason in its log. A command
 * the parser takes is not refused by the daemon (activate reaches the
 * store's -ENOENT), but for a password its policy refuses: the daemon's
 * configured policy, which keyfsctl checks too, at its defaults. */
static void agree(struct ctl *c, const char *cmd, size_t len, bool want_ok)
{
	struct command_call call;
	char why[256], line[300];
	const char *policy;
	int parsed, ran;

	parsed = command_parse(cmd, len, &call);
	ran = daemon_run(c, cmd, len);
	tap_ok((parsed == 0) == want_ok, "%.*s: the parser %s it", (int)(len && cmd[len - 1] == '\n' ? len - 1 : len),
	       cmd, want_ok ? "takes" : "refuses");
	if (parsed) {
		command_why(&call, why, sizeof(why));
		snprintf(line, sizeof(line), "control: %s\n", why);
		tap_ok(ran == -EINVAL && strstr(logbuf, line), "... so does the daemon, saying \"%s\" (ret %d)", why, ran);
	} else if (call.cmd->id == CMD_PASSWORD && policy_check(c->cfg, call.arg, call.arglen, &policy)) {
		tap_ok(ran == -EINVAL && strstr(logbuf, "control: password refused: "),
		       "... and the daemon refuses it as the policy does: %s (ret %d)", policy, ran);
	} else if (call.cmd->id == CMD_IDENTITY && !keys(call.arg, call.arglen)) {
		tap_ok(ran == -EINVAL && strstr(logbuf, "control: identity refused: line "),
		       "... and the daemon refuses the keys, saying where (ret %d)", ran);
	} else {
		tap_ok(ran != -EINVAL, "... so does the daemon (ret %d)", ran);
	}
}

static void agree_str(struct ctl *c, const char *cmd, bool want_ok)
{
	agree(c, cmd, strlen(cmd), want_ok);
}

static void test_table(void)
{
	static const char *const with_keyset[] = { "password", "hint", "forget" };
	static const char *const with_secret[] = { "password", "unlock", "identity" };
	const struct command *k, *j;
	bool ids[8] = { false };
	char verbs[128];
	size_t i, n;

	for (k = command_table; k->verb; k++) {
		tap_ok(command_find(k->verb) == k, "%s is found by its verb", k->verb);
		tap_ok((unsigned)k->id < 8 && !ids[k->id], "%s has an id of its own", k->verb);
		tap_ok(&command_table[k->id] == k, "%s is the row of its id", k->verb);
		if ((unsigned)k->id < 8)
			ids[k->id] = true;
		n = strlen(k->verb);
		tap_ok(!strncmp(k->synopsis, k->verb, n) && (!k->synopsis[n] || k->synopsis[n] == ' '),
		       "%s: the synopsis starts with the verb", k->verb);
		tap_ok(k->keyset_option == (strstr(k->synopsis, "[--keyset KEYSET]") != NULL),
		       "%s: the synopsis shows --keyset exactly when it is taken", k->verb);
		tap_ok(k->help && *k->help && !strchr(k->help, '\n'), "%s: one line of help", k->verb);
		for (j = command_table; j < k; j++)
			tap_ok(strcmp(j->verb, k->verb), "%s and %s differ", j->verb, k->verb);
		for (i = 0, n = 0; i < 3; i++)
			n += !strcmp(k->verb, with_keyset[i]);
		tap_ok(k->keyset_option == (n == 1), "%s %s --keyset", k->verb, n ? "takes" : "does not take");
		for (i = 0, n = 0; i < 3; i++)
			n += !strcmp(k->verb, with_secret[i]);
		tap_ok(k->secret == (n == 1), "%s %s a secret", k->verb, n ? "carries" : "carries no");
	}
	TAP_EQ_INT(k - command_table, 8, "eight commands");
	tap_ok(ids[CMD_PASSWORD] && ids[CMD_UNLOCK] && ids[CMD_FORGET] && ids[CMD_HINT] && ids[CMD_ACTIVATE] &&
	       ids[CMD_IDENTITY] && ids[CMD_RELOAD] && ids[CMD_REFRESH], "every command id has a row");
	tap_ok(!command_find("status") && !command_find("") && !command_find("Password"),
	       "no row for status, \"\" or Password");
	command_verbs(verbs, sizeof(verbs));
	tap_ok(!strcmp(verbs, "password, unlock, forget, hint, activate, identity, reload, refresh"),
	       "the verbs in order (%s)", verbs);
}

static void test_parse(void)
{
	struct command_call call;
	char big[COMMAND_MAX + 2];

	TAP_EQ_INT(command_parse("password --keyset web Abcdefg1!\n", 32, &call), 0, "password --keyset web");
	tap_ok(call.cmd == command_find("password") && !strcmp(call.keyset, "web") && call.arglen == 9 &&
	       !memcmp(call.arg, "Abcdefg1!", 9), "... keyset web, the password after it");
	TAP_EQ_INT(command_parse("password --keysetX y", 20, &call), 0, "--keysetX is no option");
	tap_ok(!*call.keyset && call.arglen == 11, "... but the password");
	TAP_EQ_INT(command_parse("hint", 4, &call), 0, "hint alone");
	tap_ok(call.arglen == 0 && !*call.keyset, "... clears");
	TAP_EQ_INT(command_parse("hint --keyset db", 16, &call), 0, "hint --keyset db alone");
	tap_ok(call.arglen == 0 && !strcmp(call.keyset, "db"), "... clears db's");
	TAP_EQ_INT(command_parse("activate web 3\n", 15, &call), 0, "activate web 3");
	tap_ok(!strcmp(call.name, "web") && call.version == 3, "... keyset web, version 3");
	TAP_EQ_INT(command_parse("forget --keyset ../x", 20, &call), -EINVAL, "forget --keyset ../x");
	TAP_EQ_INT(call.error, CMD_ERR_KEYSET, "... a bad keyset name");
	TAP_EQ_INT(command_parse("reset", 5, &call), -EINVAL, "reset");
	tap_ok(call.error == CMD_ERR_VERB && !call.cmd, "... no such command");
	TAP_EQ_INT(command_parse("unlock", 6, &call), -EINVAL, "unlock alone");
	tap_ok(call.error == CMD_ERR_ARGS && call.cmd == command_find("unlock"), "... bad arguments");
	memset(big, 'a', sizeof(big));
	TAP_EQ_INT(command_parse(big, COMMAND_MAX, &call), -EINVAL, "COMMAND_MAX bytes");
	TAP_EQ_INT(call.error, CMD_ERR_LENGTH, "... too long");
	TAP_EQ_INT(command_parse("forget\0", 7, &call), -EINVAL, "a NUL byte");
	TAP_EQ_INT(call.error, CMD_ERR_LENGTH, "... refused before the verb");
}

/* What keyfsctl builds: verb, --keyset where taken, arguments where taken. */
static void test_format(void)
{
	const struct command *pw = command_find("password"), *fg = command_find("forget"),
			     *ul = command_find("unlock"), *ac = command_find("activate");
	struct command_call call;
	char buf[64];
	int n;

	n = command_format(buf, sizeof(buf), pw, "web", "Abcdefg1!", 9);
	tap_ok(n == 32 && !memcmp(buf, "password --keyset web Abcdefg1!\n", 32), "password --keyset web PW");
	n = command_format(buf, sizeof(buf), pw, NULL, "Abcdefg1!", 9);
	tap_ok(n == 19 && !memcmp(buf, "password Abcdefg1!\n", 19), "password PW");
	n = command_format(buf, sizeof(buf), fg, "web", NULL, 0);
	tap_ok(n == 20 && !memcmp(buf, "forget --keyset web\n", 20), "forget --keyset web");
	n = command_format(buf, sizeof(buf), fg, NULL, "ignored", 7);
	tap_ok(n == 7 && !memcmp(buf, "forget\n", 7), "forget: arguments are not written");
	n = command_format(buf, sizeof(buf), ul, "web", "pw", 2);
	tap_ok(n == 10 && !memcmp(buf, "unlock pw\n", 10), "unlock: --keyset is not written");
	n = command_format(buf, sizeof(buf), ac, NULL, "web 2", 5);
	tap_ok(n == 15 && !memcmp(buf, "activate web 2\n", 15), "activate web 2");
	TAP_EQ_INT(command_format(buf, 15, ac, NULL, "web 2", 5), 15, "exactly the room needed");
	TAP_EQ_INT(command_format(buf, 14, ac, NULL, "web 2", 5), -ENOSPC, "one byte short: -ENOSPC");
	n = command_format(buf, sizeof(buf), pw, "web", "Abcdefg1!", 9);
	TAP_EQ_INT(command_parse(buf, (size_t)n, &call), 0, "a formatted command parses");
	tap_ok(!strcmp(call.keyset, "web") && call.arglen == 9 && !memcmp(call.arg, "Abcdefg1!", 9),
	       "... back into what was formatted");
}

/* Every command, formatted as keyfsctl does with good and bad keysets
 * and arguments: the parser's verdict is the daemon's. */
static void test_agreement_formatted(struct ctl *c)
{
	static const char *const keysets[] = { NULL, "web", "", "../x", ".keyfs",
		"k123456789012345678901234567890123456789012345678901234567890123",	/* 64 */
		"k1234567890123456789012345678901234567890123456789012345678901234" };	/* 65 */
	static const struct {
		const char *arg;
		bool ok[8];	/* the parser's verdict for password, unlock, forget, hint,
				 * activate, identity, reload, refresh */
	} args[] = {
		{ "Abcdefg1!", { true, true, false, true, false, true, true, false } },
		{ "Zyxw vut9?", { true, true, false, true, false, true, true, false } },
		{ "weak", { true, true, false, true, false, true, true, true } },
		{ "", { true, false, true, true, false, false, true, false } },
		{ "web 1", { true, true, false, true, true, true, true, false } },
		{ "web 0", { true, true, false, true, false, true, true, false } },
		{ "a\tb", { true, false, false, false, false, true, true, false } },
		{ "a\x7f" "b", { true, false, false, false, false, false, true, false } },
		{ AGE_KEY, { true, true, false, true, false, true, true, false } },
	};
	const struct command *k;
	char buf[COMMAND_MAX + 2];
	size_t i, j;
	int n;

	for (k = command_table; k->verb; k++)
		for (i = 0; i < sizeof(keysets) / sizeof(keysets[0]); i++)
			for (j = 0; j < sizeof(args) / sizeof(args[0]); j++) {
				bool keyset_ok = !k->keyset_option || !keysets[i] || !strcmp(keysets[i], "web") ||
						 i == 5;
				bool ok = args[j].ok[k->id] && keyset_ok;

				/* forget writes no arguments: the keyset decides */
				if (k->args == CMD_ARGS_NONE)
					ok = keyset_ok;
				n = command_format(buf, sizeof(buf), k, keysets[i], args[j].arg, strlen(args[j].arg));
				if (!tap_ok(n > 0, "format %s", k->verb))
					continue;
				agree(c, buf, (size_t)n, ok);
				vault_forget(c->v);
			}
}

/* Raw writes keyfsctl would never build: both sides still agree. */
static void test_agreement_raw(struct ctl *c)
{
	static const struct {
		const char *cmd;
		bool ok;
	} cases[] = {
		{ "password Abcdefg1!", true },
		{ "password Abcdefg1!\n\n", true },	/* the policy refuses the newline */
		{ "passwordX", false },
		{ "Password Abcdefg1!", false },
		{ " password Abcdefg1!", false },
		{ "password\tAbcdefg1!", false },
		{ "password --keyset", false },
		{ "password --keyset  Abcdefg1!", false },
		{ "unlock x", true },
		{ "unlock ", false },
		{ "unlockx", false },
		{ "forget", true },
		{ "forget ", true },		/* an empty argument list */
		{ "forget now", false },
		{ "forget --keyset web extra", false },
		{ "forget --keyset web", true },
		{ "forget --keyset a b", false },
		{ "hint --keyset a b", true },
		{ "password --keyset a b Abcdefg1!", true },
		{ "forgetx", false },
		{ "hint", true },
		{ "hint   spaced  out ", true },
		{ "hint a\x01z", false },
		{ "hintx", false },
		{ "activate", false },
		{ "activate keys", false },
		{ "activate keys 1", true },
		{ "activate keys 1 2", false },
		{ "activate keys 1x", false },
		{ "activate keys 0", false },
		{ "activate ../x 1", false },
		{ "activate .keyfs 1", false },
		{ "activate  keys  1 ", true },	/* sscanf() skips blanks, as ever */
		{ "activatex keys 1", false },
		{ "", false },
		{ "\n", false },
		{ "reset", false },
		{ "Abcdefg1!", false },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		agree_str(c, cases[i].cmd, cases[i].ok);
		vault_forget(c->v);
	}
	agree(c, "forget\0", 7, false);
	agree(c, "hint a\0b", 8, false);
}

/* identity: the text of an identity file, lines and all; the keys held
 * and forgotten, the text never logged. */
static void test_identity(struct ctl *c)
{
	static const char file[] = "# created: 2026-11-28T20:10:15Z\r\n# public key: " AGE_PUB "\r\n"
				   AGE_KEY "\r\n";
	const char *v = getenv("VECTORS");
	struct command_call call;
	char buf[COMMAND_MAX + 2], locked[2048] = "", path[4096];
	FILE *f;
	int n;

	TAP_EQ_INT(command_parse("identity " AGE_KEY "\n", strlen(AGE_KEY) + 10, &call), 0, "identity KEY");
	tap_ok(call.arglen == strlen(AGE_KEY) && call.cmd->secret, "... the key, a secret");
	n = command_format(buf, sizeof(buf), command_find("identity"), NULL, file, strlen(file));
	TAP_EQ_INT(command_parse(buf, (size_t)n, &call), 0, "a whole file, CRLF lines");
	TAP_EQ_INT(call.arglen, strlen(file), "... all of it");
	TAP_EQ_INT(command_parse("identity a\rb", 12, &call), -EINVAL, "a lone CR");
	TAP_EQ_INT(command_parse("identity a\0b", 12, &call), -EINVAL, "a NUL");
	TAP_EQ_INT(command_parse("identity", 8, &call), -EINVAL, "no text");
	TAP_EQ_INT(call.error, CMD_ERR_ARGS, "... bad arguments");
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "identity ", 9);
	TAP_EQ_INT(command_parse(buf, COMMAND_MAX, &call), -EINVAL, "COMMAND_MAX bytes: too long");

	keyring_forget(c->kr);
	n = command_format(buf, sizeof(buf), command_find("identity"), NULL, file, strlen(file));
	TAP_EQ_INT(daemon_run(c, buf, (size_t)n), 0, "the daemon takes the file");
	TAP_EQ_INT(keyring_count(c->kr), 1, "... and holds its identity");
	tap_ok(!strstr(logbuf, "AGE-SECRET-KEY") && !strstr(logbuf, "DLDCGM8W"), "the key is not logged");
	/* ssh-keygen -N hunter2's key, from tests/vectors/keys */
	snprintf(path, sizeof(path), "%s/../keys/id_ed25519_locked", v ? v : ".");
	f = fopen(path, "r");
	tap_ok(f && fread(locked, 1, sizeof(locked) - 1, f) > 0, "read %s", path);
	if (f)
		fclose(f);
	n = command_format(buf, sizeof(buf), command_find("identity"), NULL, locked, strlen(locked));
	TAP_EQ_INT(daemon_run(c, buf, (size_t)n), -EINVAL, "a passphrase-protected OpenSSH key: -EINVAL");
	tap_ok(strstr(logbuf, "control: identity refused: line 1: passphrase-protected OpenSSH keys"),
	       "... saying why (%s)", logbuf);
	TAP_EQ_INT(keyring_count(c->kr), 1, "... and nothing changed");
	TAP_EQ_INT(daemon_run(c, "forget --keyset web", 19), 0, "forget --keyset");
	TAP_EQ_INT(keyring_count(c->kr), 1, "... keeps the identities");
	TAP_EQ_INT(daemon_run(c, "forget", 6), 0, "forget");
	TAP_EQ_INT(keyring_count(c->kr), 0, "... wipes them");
	TAP_EQ_INT(daemon_run(c, "reload", 6), -ENOTSUP, "reload without a hook: -ENOTSUP");
}

/* The unknown-command line names every verb of the table, never the
 * command (it may be a password). */
static void test_unknown_words(struct ctl *c)
{
	daemon_run(c, "Abcdefg1!\n", 10);
	tap_ok(strstr(logbuf, "control: unknown command (commands: password, unlock, forget, hint, activate, "
			      "identity, reload, refresh)") &&
	       !strstr(logbuf, "Abcdefg1!"), "unknown: the verbs, not the text (%s)", logbuf);
}

int main(void)
{
	struct store st = { .ops = &mem_ops };
	char dir[] = "/tmp/keyfs-test-command.XXXXXX";
	struct state state;
	struct config cfg;
	struct ctl c = { 0 };

	if (sodium_init() < 0) {
		tap_ok(false, "sodium_init");
		return tap_done();
	}
	/* the policy at its documented defaults (config.c is not linked) */
	memset(&cfg, 0, sizeof(cfg));
	cfg.policy = POLICY_COMPLEX;
	cfg.min_length = 8;
	c.cfg = &cfg;
	c.st = &st;
	if (!tap_ok(mkdtemp(dir) && !state_open(&state, dir), "a state directory"))
		return tap_done();
	c.state = &state;
	if (!tap_ok(vault_new(&c.v) == 0 && import_new(&c.im, &st, &state, c.v) == 0 &&
		    keyring_new(&c.kr) == 0, "vault, importer and keyring"))
		return tap_done();
	test_table();
	test_parse();
	test_format();
	test_agreement_formatted(&c);
	test_agreement_raw(&c);
	test_unknown_words(&c);
	test_identity(&c);
	import_free(c.im);
	keyring_free(c.kr);
	vault_free(c.v);
	state_close(&state);
	tap_ok(!system("rm -rf /tmp/keyfs-test-command.*"), "state directory removed");
	return tap_done();
}
