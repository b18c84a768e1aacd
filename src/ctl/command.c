/* The .control commands: one table, one parser. The daemon and keyfsctl
 * both run command_parse(), so a command keyfsctl checked is one the
 * daemon parses the same way. Nothing here logs: the parser also runs in
 * keyfsctl, and the daemon words its own log lines. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "keyfs/command.h"
#include "keyfs/vault.h"

#define STR_(x) #x
#define STR(x) STR_(x)

const struct command command_table[] = {
	{ "password", CMD_PASSWORD, CMD_ARGS_PASSWORD, .keyset_option = true, .secret = true,
	  .synopsis = "password [--keyset KEYSET] PASSWORD",
	  .help = "set the backup password, or one keyset's own" },
	{ "unlock", CMD_UNLOCK, CMD_ARGS_SECRET, .secret = true,
	  .synopsis = "unlock PASSWORD",
	  .help = "add a password to try on import",
	  .refusal = "unlock password refused: empty, too long or with control characters" },
	{ "forget", CMD_FORGET, CMD_ARGS_NONE, .keyset_option = true,
	  .synopsis = "forget [--keyset KEYSET]",
	  .help = "wipe every password and identity, or one keyset's own password" },
	{ "hint", CMD_HINT, CMD_ARGS_TEXT, .keyset_option = true,
	  .synopsis = "hint [--keyset KEYSET] [TEXT]",
	  .help = "set the password hint, or one keyset's",
	  .refusal = "hint refused: longer than " STR(KEYSET_HINT_MAX)
		     " bytes or with control characters" },
	{ "activate", CMD_ACTIVATE, CMD_ARGS_VERSION,
	  .synopsis = "activate KEYSET VERSION [unauthenticated]",
	  .help = "make an inactive version of a keyset active" },
	{ "identity", CMD_IDENTITY, CMD_ARGS_KEYFILE, .secret = true,
	  .synopsis = "identity IDENTITY-FILE-TEXT",
	  .help = "add the identities of an identity file to try on import",
	  .refusal = "identity refused: empty, or not the text of an identity file" },
	{ "reload", CMD_RELOAD, CMD_ARGS_NONE,
	  .synopsis = "reload",
	  .help = "read the password and identity sources again (as SIGHUP)" },
	{ "refresh", CMD_REFRESH, CMD_ARGS_KEYSET,
	  .synopsis = "refresh KEYSET",
	  .help = "run a command keyset's backup_command now" },
	{ .verb = NULL },
};

static const struct command *find(const char *verb, size_t len)
{
	const struct command *c;

	for (c = command_table; c->verb; c++)
		if (strlen(c->verb) == len && !memcmp(c->verb, verb, len))
			return c;
	return NULL;
}

const struct command *command_find(const char *verb)
{
	return find(verb, strlen(verb));
}

static bool printable(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* "--keyset NAME[ rest]" at the front of the arguments: takes it off. No
 * option there is no error: "--keysetX" is an argument like any other. */
static int keyset_option(struct command_call *call)
{
	static const char opt[] = "--keyset";
	const size_t olen = sizeof(opt) - 1;
	const char *name, *sp;
	size_t left, n;

	if (call->arglen < olen || memcmp(call->arg, opt, olen) ||
	    (call->arglen > olen && call->arg[olen] != ' '))
		return 0;
	name = call->arg + olen + (call->arglen > olen);
	left = call->arglen > olen ? call->arglen - olen - 1 : 0;
	sp = memchr(name, ' ', left);
	n = sp ? (size_t)(sp - name) : left;
	if (n > KEYSET_NAME_MAX)
		return -EINVAL;
	memcpy(call->keyset, name, n);
	call->keyset[n] = '\0';
	if (!keyset_name_valid(call->keyset)) {
		call->keyset[0] = '\0';
		return -EINVAL;
	}
	call->arg = sp ? sp + 1 : name + left;
	call->arglen = sp ? left - n - 1 : 0;
	return 0;
}

/* "KEYSET VERSION", read as sscanf() reads it (the daemon always has). */
/* "KEYSET VERSION", or "KEYSET VERSION unauthenticated": the consent to
 * install a version no signature or password vouches for. */
static bool keyset_version(struct command_call *call)
{
	char args[COMMAND_MAX], word[16], extra;
	int n;

	memcpy(args, call->arg, call->arglen);
	args[call->arglen] = '\0';
	n = sscanf(args, "%" STR(KEYSET_NAME_MAX) "s %u %15s %c", call->name, &call->version, word,
		   &extra);
	if (n == 3 && !strcmp(word, "unauthenticated"))
		call->unauthenticated = true;
	else if (n != 2)
		return false;
	return keyset_name_valid(call->name) && call->version;
}

/* Text lines: printable characters and tabs, each line ending in LF or
 * CRLF (the last may have no end). */
static bool keyfile_text(const char *s, size_t len)
{
	size_t i;

	if (!len)
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
			continue;
		if (s[i] != '\n' && s[i] != '\t' && !printable(s + i, 1))
			return false;
	}
	return true;
}

static bool args_fit(struct command_call *call)
{
	switch (call->cmd->args) {
	case CMD_ARGS_NONE:
		return !call->arglen;
	case CMD_ARGS_PASSWORD:
		return true;
	case CMD_ARGS_SECRET:
		return call->arglen && call->arglen <= SECRET_PW_MAX && printable(call->arg, call->arglen);
	case CMD_ARGS_TEXT:
		return call->arglen <= KEYSET_HINT_MAX && printable(call->arg, call->arglen);
	case CMD_ARGS_VERSION:
		return keyset_version(call);
	case CMD_ARGS_KEYSET:
		if (!call->arglen || call->arglen >= sizeof(call->name))
			return false;
		memcpy(call->name, call->arg, call->arglen);
		call->name[call->arglen] = '\0';
		return keyset_name_valid(call->name);
	case CMD_ARGS_KEYFILE:
		return keyfile_text(call->arg, call->arglen);
	}
	return false;
}

static int refuse(struct command_call *call, enum command_error error)
{
	call->error = error;
	return -EINVAL;
}

int command_parse(const char *buf, size_t len, struct command_call *call)
{
	const char *sp;
	size_t vlen;

	memset(call, 0, sizeof(*call));
	if (len && buf[len - 1] == '\n')
		len--;
	/* Length first: no verb of an oversize write is looked at. */
	if (len >= COMMAND_MAX || memchr(buf, '\0', len))
		return refuse(call, CMD_ERR_LENGTH);
	sp = memchr(buf, ' ', len);
	vlen = sp ? (size_t)(sp - buf) : len;
	call->cmd = find(buf, vlen);
	if (!call->cmd)
		return refuse(call, CMD_ERR_VERB);
	call->arg = sp ? sp + 1 : buf + len;
	call->arglen = sp ? len - vlen - 1 : 0;
	if (call->cmd->keyset_option && keyset_option(call))
		return refuse(call, CMD_ERR_KEYSET);
	if (!args_fit(call))
		return refuse(call, CMD_ERR_ARGS);
	return 0;
}

int command_format(char *buf, size_t size, const struct command *cmd, const char *keyset,
		   const char *arg, size_t arglen)
{
	static const char opt[] = " --keyset ";
	bool with_keyset = cmd->keyset_option && keyset, with_args = cmd->args != CMD_ARGS_NONE;
	size_t vlen = strlen(cmd->verb), klen = with_keyset ? strlen(keyset) : 0, n = 0;
	size_t need = vlen + (with_keyset ? sizeof(opt) - 1 + klen : 0) + (with_args ? 1 + arglen : 0) + 1;

	if (need > size || need > INT_MAX)
		return -ENOSPC;
	memcpy(buf, cmd->verb, vlen);
	n = vlen;
	if (with_keyset) {
		memcpy(buf + n, opt, sizeof(opt) - 1);
		memcpy(buf + n + sizeof(opt) - 1, keyset, klen);
		n += sizeof(opt) - 1 + klen;
	}
	if (with_args) {
		buf[n++] = ' ';
		memcpy(buf + n, arg, arglen);
		n += arglen;
	}
	buf[n++] = '\n';
	return (int)n;
}

void command_verbs(char *buf, size_t size)
{
	const struct command *c;
	size_t n = 0;

	buf[0] = '\0';
	for (c = command_table; c->verb && n < size; c++)
		n += (size_t)snprintf(buf + n, size - n, "%s%s", c == command_table ? "" : ", ", c->verb);
}

void command_why(const struct command_call *call, char *buf, size_t size)
{
	char verbs[128];

	switch (call->error) {
	case CMD_OK:
		snprintf(buf, size, "accepted");
		break;
	case CMD_ERR_LENGTH:
		snprintf(buf, size, "command refused: too long or contains a NUL byte");
		break;
	case CMD_ERR_VERB:
		/* Name the verbs only: an unknown command may be a mistyped password. */
		command_verbs(verbs, sizeof(verbs));
		snprintf(buf, size, "unknown command (commands: %s)", verbs);
		break;
	case CMD_ERR_KEYSET:
		snprintf(buf, size, "--keyset needs a valid keyset name");
		break;
	case CMD_ERR_ARGS:
		if (call->cmd->refusal)
			snprintf(buf, size, "%s", call->cmd->refusal);
		else
			snprintf(buf, size, "usage: %s", call->cmd->synopsis);
		break;
	}
}
