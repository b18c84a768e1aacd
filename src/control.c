/* Commands written to .control. Passwords arrive here in guarded memory
 * and leave only into the vault; nothing about them is logged but the
 * fact that one was set or refused, and why. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "keyfs/control.h"
#include "keyfs/log.h"
#include "keyfs/meta.h"

/* Splits "verb rest" in place; returns rest (possibly ""), or NULL if the
 * verb differs. */
static char *match(char *buf, size_t len, const char *verb, size_t *restlen)
{
	size_t n = strlen(verb);

	if (len < n || memcmp(buf, verb, n))
		return NULL;
	if (len == n) {
		*restlen = 0;
		return buf + n;
	}
	if (buf[n] != ' ')
		return NULL;
	*restlen = len - n - 1;
	return buf + n + 1;
}

static bool printable(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* "--keyset NAME rest": takes the option off the front of *args. */
static int keyset_option(char **args, size_t *len, char name[static KEYSET_NAME_MAX + 1])
{
	size_t restlen, n;
	char *rest, *sp;

	name[0] = '\0';
	rest = match(*args, *len, "--keyset", &restlen);
	if (!rest)
		return 0;
	sp = memchr(rest, ' ', restlen);
	n = sp ? (size_t)(sp - rest) : restlen;
	if (n > KEYSET_NAME_MAX)
		return -EINVAL;
	memcpy(name, rest, n);
	name[n] = '\0';
	if (!keyset_name_valid(name)) {
		log_msg(LOG_WARNING, "control: --keyset needs a valid keyset name");
		return -EINVAL;
	}
	*args = sp ? sp + 1 : rest + restlen;
	*len = sp ? restlen - n - 1 : 0;
	return 0;
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

static int cmd_password(struct ctl *c, char *pw, size_t len)
{
	char keyset[KEYSET_NAME_MAX + 1];
	const char *why;
	int ret;

	ret = keyset_option(&pw, &len, keyset);
	if (ret)
		return ret;
	ret = policy_check(c->cfg, pw, len, &why);
	if (ret) {
		log_msg(LOG_WARNING, "control: password refused: %s", why);
		return ret;
	}
	if (*keyset) {
		/* Persistent, once taken: this keyset is never sealed under
		 * the backup password again, even before its own is given
		 * after a restart (until "forget --keyset"). */
		ret = vault_set_keyset(c->v, keyset, pw, len);
		if (ret == -ENOSPC)
			log_msg(LOG_WARNING, "control: password for keyset \"%s\" refused: every keyset "
				"password slot is taken", keyset);
		if (!ret)
			ret = own_password_mark(c, keyset, "yes");
	} else {
		ret = vault_set(c->v, pw, len);
	}
	if (ret)
		return ret;
	if (*keyset)
		log_msg(LOG_NOTICE, "control: password for keyset \"%s\" set; it cannot be recovered if lost",
			keyset);
	else
		log_msg(LOG_NOTICE, "control: backup password set; it cannot be recovered if lost");
	/* Tell the cache now, so exports start sealing in the background. */
	return c->sc ? sealcache_password_changed(c->sc) : 0;
}

/* "forget": every password; "forget --keyset K": K's own password, after
 * which K is sealed under the backup password again. */
static int cmd_forget(struct ctl *c, char *args, size_t len)
{
	char keyset[KEYSET_NAME_MAX + 1];
	int ret;

	ret = keyset_option(&args, &len, keyset);
	if (ret || len) {
		log_msg(LOG_WARNING, "control: usage: forget [--keyset KEYSET]");
		return -EINVAL;
	}
	if (*keyset) {
		ret = own_password_mark(c, keyset, "");
		if (ret)
			return ret;
		vault_forget_keyset(c->v, keyset);
		log_msg(LOG_NOTICE, "control: keyset \"%s\" has no password of its own any more; it is "
			"sealed under the backup password", keyset);
	} else {
		vault_forget(c->v);
		log_msg(LOG_NOTICE, "control: every password forgotten");
	}
	return c->sc ? sealcache_password_changed(c->sc) : 0;
}

static int cmd_unlock(struct ctl *c, const char *pw, size_t len)
{
	int ret;

	if (!len || len > SECRET_PW_MAX || !printable(pw, len)) {
		log_msg(LOG_WARNING, "control: unlock password refused: empty, too long or with control characters");
		return -EINVAL;
	}
	ret = vault_add_unlock(c->v, pw, len);
	if (ret)
		log_msg(LOG_WARNING, "control: unlock refused: every password slot is taken");
	else
		log_msg(LOG_NOTICE, "control: unlock password added for import");
	return ret;
}

static int cmd_hint(struct ctl *c, char *text, size_t len)
{
	char keyset[KEYSET_NAME_MAX + 1];
	int ret;

	ret = keyset_option(&text, &len, keyset);
	if (ret)
		return ret;
	if (len > KEYSET_HINT_MAX || !printable(text, len)) {
		log_msg(LOG_WARNING, "control: hint refused: longer than %d bytes or with control characters",
			KEYSET_HINT_MAX);
		return -EINVAL;
	}
	text[len] = '\0';
	ret = meta_set_hint(c->state, *keyset ? keyset : NULL, text);
	if (ret)
		log_msg(LOG_ERR, "control: storing the hint failed: %s", strerror(-ret));
	else
		log_msg(LOG_NOTICE, "control: password hint %s", len ? "set" : "cleared");
	/* the hint is sealed into KEYSET.ini: reseal now, not on next use */
	if (!ret && c->sc)
		sealcache_queue_stale(c->sc);
	return ret;
}

static int cmd_activate(struct ctl *c, char *args, size_t len)
{
	char name[KEYSET_NAME_MAX + 1], extra;
	unsigned version;

	args[len] = '\0';
	if (sscanf(args, "%64s %u %c", name, &version, &extra) != 2 || !keyset_name_valid(name) ||
	    !version) {
		log_msg(LOG_WARNING, "control: usage: activate KEYSET VERSION");
		return -EINVAL;
	}
	return import_activate(c->im, name, version);
}

int ctl_command(struct ctl *c, char *buf, size_t len)
{
	size_t rest_len;
	char *rest;

	if (len && buf[len - 1] == '\n')
		len--;
	if (len >= CTL_COMMAND_MAX || memchr(buf, '\0', len)) {
		log_msg(LOG_WARNING, "control: command refused: too long or contains a NUL byte");
		return -EINVAL;
	}
	if ((rest = match(buf, len, "password", &rest_len)))
		return cmd_password(c, rest, rest_len);
	if ((rest = match(buf, len, "unlock", &rest_len)))
		return cmd_unlock(c, rest, rest_len);
	if ((rest = match(buf, len, "hint", &rest_len)))
		return cmd_hint(c, rest, rest_len);
	if ((rest = match(buf, len, "activate", &rest_len)))
		return cmd_activate(c, rest, rest_len);
	if ((rest = match(buf, len, "forget", &rest_len)))
		return cmd_forget(c, rest, rest_len);
	/* Name the verb only: an unknown command may be a mistyped password. */
	log_msg(LOG_WARNING, "control: unknown command (commands: password, unlock, forget, hint, activate)");
	return -EINVAL;
}
