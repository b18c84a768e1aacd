/* Commands written to .control. Passwords arrive here in guarded memory
 * and leave only into the vault; nothing about them is logged but the
 * fact that one was set or refused, and why. Which commands exist and
 * how they parse is command.c's table; this file carries them out, and
 * tells its observer what changed rather than knowing who cares. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "keyfs/command.h"
#include "keyfs/control.h"
#include "keyfs/keyring.h"
#include "keyfs/log.h"
#include "keyfs/meta.h"
#include "keyfs/policy.h"
#include "keyfs/store_command.h"

static int secrets_changed(struct ctl *c)
{
	return c->obs.secrets_changed ? c->obs.secrets_changed(c->obs.arg) : 0;
}

static void hints_changed(struct ctl *c)
{
	if (c->obs.hints_changed)
		c->obs.hints_changed(c->obs.arg);
}

static int own_password_mark(struct ctl *c, const char *keyset, const char *value)
{
	int ret;

	ret = meta_set_own_password(c->state, keyset, *value != '\0');
	if (ret)
		log_msg(LOG_ERR, "control: storing the password mark of keyset \"%s\" failed: %s", keyset,
			strerror(-ret));
	return ret;
}

static int cmd_password(struct ctl *c, const struct command_call *call)
{
	const char *why, *keyset = call->keyset;
	int ret;

	ret = policy_check(c->cfg, call->arg, call->arglen, &why);
	if (ret) {
		log_msg(LOG_WARNING, "control: password refused: %s", why);
		return ret;
	}
	if (*keyset) {
		/* Persistent, once taken: this keyset is never sealed under
		 * the backup password again, even before its own is given
		 * after a restart (until "forget --keyset"). */
		ret = vault_set_keyset(c->v, keyset, call->arg, call->arglen);
		if (ret == -ENOSPC)
			log_msg(LOG_WARNING, "control: password for keyset \"%s\" refused: every keyset "
				"password slot is taken", keyset);
		if (!ret)
			ret = own_password_mark(c, keyset, "yes");
	} else {
		ret = vault_set(c->v, call->arg, call->arglen);
	}
	if (ret)
		return ret;
	if (*keyset)
		log_msg(LOG_NOTICE, "control: password for keyset \"%s\" set; it cannot be recovered if lost",
			keyset);
	else
		log_msg(LOG_NOTICE, "control: backup password set; it cannot be recovered if lost");
	/* Tell now, so exports start sealing in the background. */
	return secrets_changed(c);
}

/* "forget": every password; "forget --keyset K": K's own password, after
 * which K is sealed under the backup password again. */
static int cmd_forget(struct ctl *c, const struct command_call *call)
{
	int ret;

	if (*call->keyset) {
		ret = own_password_mark(c, call->keyset, "");
		if (ret)
			return ret;
		vault_forget_keyset(c->v, call->keyset);
		log_msg(LOG_NOTICE, "control: keyset \"%s\" has no password of its own any more; it is "
			"sealed under the backup password", call->keyset);
	} else {
		vault_forget(c->v);
		if (c->kr)
			keyring_forget(c->kr);
		log_msg(LOG_NOTICE, "control: every password and identity forgotten");
	}
	return secrets_changed(c);
}

static int cmd_unlock(struct ctl *c, const struct command_call *call)
{
	int ret;

	ret = vault_add_unlock(c->v, call->arg, call->arglen);
	if (ret)
		log_msg(LOG_WARNING, "control: unlock refused: every password slot is taken");
	else
		log_msg(LOG_NOTICE, "control: unlock password added for import");
	return ret;
}

static int cmd_hint(struct ctl *c, const struct command_call *call)
{
	char text[KEYSET_HINT_MAX + 1];
	int ret;

	_Static_assert(sizeof(text) > KEYSET_HINT_MAX, "command_parse() bounds a hint");
	memcpy(text, call->arg, call->arglen);
	text[call->arglen] = '\0';
	ret = meta_set_hint(c->state, *call->keyset ? call->keyset : NULL, text);
	if (ret) {
		log_msg(LOG_ERR, "control: storing the hint failed: %s", strerror(-ret));
		return ret;
	}
	log_msg(LOG_NOTICE, "control: password hint %s", call->arglen ? "set" : "cleared");
	/* the hint is sealed into KEYSET.ini: reseal now, not on next use */
	hints_changed(c);
	return 0;
}

static int cmd_activate(struct ctl *c, const struct command_call *call)
{
	return import_activate(c->im, call->name, call->version, call->unauthenticated);
}

/* The identities of an identity file, to try on import. The log names
 * the recipients they open (public), never the text. */
static int cmd_identity(struct ctl *c, const struct command_call *call)
{
	struct age_identity_list l;
	char why[160];
	size_t n;
	int ret;

	if (!c->kr)
		return -ENOTSUP;
	ret = age_keys_identities(&l, call->arg, call->arglen, why, sizeof(why));
	if (ret == AGE_SSH_ENCRYPTED || ret == -EINVAL) {
		log_msg(LOG_WARNING, "control: identity refused: %s", why);
		return -EINVAL;
	}
	if (ret)
		return ret;
	n = l.n;
	ret = keyring_add(c->kr, KEYRING_CONTROL, &l, 1);
	if (ret == -ENOSPC)
		log_msg(LOG_WARNING, "control: identity refused: more than %d identities held",
			KEYRING_MAX);
	if (ret < 0)
		return ret;
	log_msg(LOG_NOTICE, "control: %zu identit%s given for import (%zu held)", n,
		n == 1 ? "y" : "ies", keyring_count(c->kr));
	return 0;
}

static int cmd_reload(struct ctl *c, const struct command_call *call)
{
	(void)call;
	if (!c->obs.reload)
		return -ENOTSUP;
	log_msg(LOG_NOTICE, "control: reload: reading the password and identity sources again");
	return c->obs.reload(c->obs.arg);
}

/* The run's failure is the keyset's trouble: the log and the status
 * say why; the writer learns that it failed. */
static int cmd_refresh(struct ctl *c, const struct command_call *call)
{
	int ret = store_command_refresh(c->st, call->name);

	if (ret == -ENOENT)
		log_msg(LOG_WARNING, "control: refresh \"%s\": not a keyset with a backup_command",
			call->name);
	else
		log_msg(ret ? LOG_WARNING : LOG_NOTICE, "control: refresh \"%s\": %s", call->name,
			ret ? "backup_command failed (see the status)" : "done");
	return ret == -ENODATA ? -EIO : ret;
}

/* Indexed by enum command_id: every row of command_table has its handler. */
static int (*const handlers[])(struct ctl *c, const struct command_call *call) = {
	[CMD_PASSWORD] = cmd_password,
	[CMD_UNLOCK] = cmd_unlock,
	[CMD_FORGET] = cmd_forget,
	[CMD_HINT] = cmd_hint,
	[CMD_ACTIVATE] = cmd_activate,
	[CMD_IDENTITY] = cmd_identity,
	[CMD_RELOAD] = cmd_reload,
	[CMD_REFRESH] = cmd_refresh,
};

/* The reason goes to the log, the writer gets EINVAL. A command that takes
 * nothing but --keyset answers a bad one with its usage as well. */
static void log_refusal(const struct command_call *call)
{
	struct command_call usage;
	char why[256];

	command_why(call, why, sizeof(why));
	log_msg(LOG_WARNING, "control: %s", why);
	if (call->error == CMD_ERR_KEYSET && call->cmd->args == CMD_ARGS_NONE) {
		usage = *call;
		usage.error = CMD_ERR_ARGS;
		command_why(&usage, why, sizeof(why));
		log_msg(LOG_WARNING, "control: %s", why);
	}
}

int ctl_command(struct ctl *c, char *buf, size_t len)
{
	struct command_call call;
	int ret;

	ret = command_parse(buf, len, &call);
	if (ret) {
		log_refusal(&call);
		return ret;
	}
	return handlers[call.cmd->id](c, &call);
}
