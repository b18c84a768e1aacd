/* libFuzzer target: commands written to .control.
 *
 * An input is a series of writes separated by NUL bytes (a NUL inside a
 * write is refused by one memchr, which test_control covers), run against
 * a real vault, the default config, a real importer, a real state
 * directory and an in-memory store which holds no keyset versions. State is reset per input so runs repeat. The observer of
 * .control counts its calls in place of a seal cache (which needs a
 * keystore on disk).
 *
 * Beyond not crashing: an accepted "password X" leaves X as the backup
 * password, "password --keyset K X" gives K a password, "hint T" stores
 * T, "identity F" holds an identity, "forget" leaves no backup password
 * and no identity, "forget --keyset K" leaves K
 * without a password of its own, and "activate" is never
 * accepted as there is no version to activate. The observer hears of
 * exactly the accepted password, forget and hint commands; and
 * command_parse(), which keyfsctl runs before sending, takes exactly the
 * writes ctl_command() does not refuse as malformed. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/command.h"
#include "keyfs/config.h"
#include "keyfs/control.h"
#include "keyfs/dirwalk.h"
#include "keyfs/keyring.h"
#include "keyfs/log.h"
#include "keyfs/meta.h"
#include "keyfs/state.h"
#include "keyfs/store.h"
#include "keyfs/vault.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Hints and marks go to a real state directory (meta.h), made once in a
 * temporary place and emptied per input. */
static struct state state;

static int unlink_one(int dirfd, const char *name, const struct stat *st, void *arg)
{
	(void)st;
	(void)arg;
	unlinkat(dirfd, name, 0);
	return 0;
}

static int mem_activate(void *priv, const char *name, unsigned version, unsigned *kept)
{
	(void)priv;
	/* control.c checks both before it gets here */
	if (!keyset_name_valid(name) || version == 0)
		abort();
	*kept = 0;
	return -ENOENT;
}

/* No keysets: a refused activate names the keysets there are. */
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
	if (!keyset_name_valid(name))
		abort();
	*stamp = 0;
	return -ENOENT;
}

static void mem_destroy(void *priv)
{
	(void)priv;
}

/* Only these are reachable from ctl_command() with no seal cache; a call
 * through any other (NULL) op is a finding. */
static const struct store_ops mem_ops = {
	.list = mem_list,
	.stamp = mem_stamp,
	.activate = mem_activate,
	.destroy = mem_destroy,
};

static int secrets_seen, hints_seen;

static int count_secrets(void *arg)
{
	(void)arg;
	secrets_seen++;
	return 0;
}

static void count_hints(void *arg)
{
	(void)arg;
	hints_seen++;
}

static struct config cfg;
static struct store st = { .ops = &mem_ops };
static struct ctl ctl = { .cfg = &cfg, .st = &st, .state = &state,
			  .obs = { count_secrets, count_hints, NULL, NULL } };

/* Replaces log.c: every message is still formatted (so a bad format
 * argument shows up under the sanitizers) but dropped, which keeps the
 * fuzzer's output readable and fast. */
void log_msg(int level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	(void)level;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	static char dir[] = "/tmp/keyfs-fuzz-control.XXXXXX";

	if (sodium_init() < 0 || !mkdtemp(dir) || state_open(&state, dir) ||
	    vault_new(&ctl.v) != 0 || import_new(&ctl.im, &st, &state, ctl.v) != 0 ||
	    keyring_new(&ctl.kr) != 0)
		abort();
	config_defaults(&cfg);
	return 0;
}

/* The argument of "verb arg" in w (trailing newline dropped), or NULL. */
static const char *arg_of(const char *w, size_t len, const char *verb, size_t *arglen)
{
	size_t n = strlen(verb);

	if (len && w[len - 1] == '\n')
		len--;
	if (len < n + 1 || memcmp(w, verb, n) || w[n] != ' ')
		return NULL;
	*arglen = len - n - 1;
	return w + n + 1;
}

/* Splits "--keyset K rest" into K (NUL-terminated) and rest; false if
 * the argument does not start with the option. */
static bool keyset_of(const char **arg, size_t *n, char k[static KEYSET_NAME_MAX + 1])
{
	const char *sp;
	size_t klen;

	if (*n < 9 || memcmp(*arg, "--keyset ", 9))
		return false;
	sp = memchr(*arg + 9, ' ', *n - 9);
	klen = sp ? (size_t)(sp - *arg) - 9 : *n - 9;
	if (klen > KEYSET_NAME_MAX)
		abort(); /* accepted, so the name was checked */
	memcpy(k, *arg + 9, klen);
	k[klen] = '\0';
	*n = sp ? *n - 9 - klen - 1 : 0;
	*arg = sp ? sp + 1 : *arg + 9 + klen;
	return true;
}

/* True if keyset k seals with exactly pw. */
static bool keyset_has(const char *k, const char *pw, size_t len)
{
	struct age_pass pass;
	uint64_t gen;
	bool same;

	if (vault_read_for(ctl.v, k, &pass, &gen) != 0)
		return false;
	same = pass.len == len && !sodium_memcmp(pass.p, pw, len);
	vault_read_end(ctl.v);
	return same;
}

/* True if keyset k has a password of its own. */
static bool has_own(const char *k)
{
	char names[VAULT_KEYSET_SLOTS][KEYSET_NAME_MAX + 1];
	size_t i, n = vault_keysets(ctl.v, names, VAULT_KEYSET_SLOTS);

	for (i = 0; i < n; i++)
		if (!strcmp(names[i], k))
			return true;
	return false;
}

static const char *meta_value(const char *key)
{
	static char buf[META_VALUE_MAX];

	if (meta_get(&state, key, buf, sizeof(buf)))
		buf[0] = '\0';
	return buf;
}

static void check_effect(const char *w, size_t len)
{
	char k[KEYSET_NAME_MAX + 1], key[KEYSET_NAME_MAX + 32];
	const char *arg, *v;
	size_t n;

	if ((arg = arg_of(w, len, "password", &n))) {
		if (keyset_of(&arg, &n, k)) {
			if (!keyset_has(k, arg, n))
				abort();
		} else if (!vault_is_backup(ctl.v, arg, n)) {
			abort();
		}
	}
	if ((arg = arg_of(w, len, "hint", &n))) {
		if (keyset_of(&arg, &n, k))
			snprintf(key, sizeof(key), "hint.%s", k);
		else
			strcpy(key, "hint");
		v = meta_value(key);
		if (strlen(v) != n || memcmp(v, arg, n))
			abort();
	}
	if ((arg = arg_of(w, len, "forget", &n)) && keyset_of(&arg, &n, k)) {
		if (has_own(k))
			abort();
	} else if (len >= 6 && !memcmp(w, "forget", 6) &&
		   (vault_has_password(ctl.v) || keyring_count(ctl.kr))) {
		abort(); /* every password and identity is wiped */
	}
	if (len >= 8 && !memcmp(w, "activate", 8))
		abort();
	if (arg_of(w, len, "identity", &n) && !keyring_count(ctl.kr))
		abort();
}

/* What the observer must have heard of an accepted write. */
static void check_observed(const struct command_call *call, int secrets, int hints)
{
	bool seals = call->cmd->id == CMD_PASSWORD || call->cmd->id == CMD_FORGET;

	if (secrets != (seals ? 1 : 0) || hints != (call->cmd->id == CMD_HINT ? 1 : 0))
		abort();
}

static void run_write(const uint8_t *p, size_t len)
{
	struct command_call call;
	int parsed, ret;
	char *buf;

	/* fs.c hands over a private copy one byte longer than the write */
	buf = malloc(len + 1);
	if (!buf)
		return;
	memcpy(buf, p, len);
	buf[len] = 'Z'; /* not a NUL: nothing may rely on one */
	parsed = command_parse((const char *)p, len, &call);
	secrets_seen = hints_seen = 0;
	ret = ctl_command(&ctl, buf, len);
	/* Only a password the policy refuses, or a store or importer
	 * error, fails a command the parser took. */
	if (parsed && ret != -EINVAL)
		abort();
	if (ret == 0) {
		check_effect((const char *)p, len);
		check_observed(&call, secrets_seen, hints_seen);
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *nul;
	size_t left = size;

	vault_forget(ctl.v);
	keyring_forget(ctl.kr);
	dirwalk_each(state.fd, STATE_META, unlink_one, NULL);
	while ((nul = memchr(p, '\0', left))) {
		run_write(p, (size_t)(nul - p));
		left -= (size_t)(nul - p) + 1;
		p = nul + 1;
	}
	run_write(p, left);
	return 0;
}
