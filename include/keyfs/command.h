/* The commands written to MNT/.control, one per write(2), in one table.
 * control.c dispatches through it; keyfsctl builds its commands with
 * command_format() and checks them with command_parse() before sending,
 * so both sides agree on what keyfs accepts. This is syntax only: the
 * password policy, the vault and the store stay with the daemon.
 *
 * A command is "VERB[ ARGS]" with at most one trailing newline, shorter
 * than COMMAND_MAX bytes and free of NUL bytes. Where the table says so,
 * "--keyset K" may come first in ARGS. */
#ifndef KEYFS_COMMAND_H
#define KEYFS_COMMAND_H

#include <stdbool.h>
#include <stddef.h>

#include "keyfs/keyset.h"

/* Commands this long or longer (the trailing newline not counted) are
 * refused before their verb is looked at. */
#define COMMAND_MAX 4096

enum command_id {
	CMD_PASSWORD,
	CMD_UNLOCK,
	CMD_FORGET,
	CMD_HINT,
	CMD_ACTIVATE,
	CMD_IDENTITY,
	CMD_RELOAD,
	CMD_REFRESH,
};

/* What a command takes after its verb (and after --keyset K). */
enum command_args {
	CMD_ARGS_NONE,		/* nothing */
	CMD_ARGS_PASSWORD,	/* the rest, as it is: the daemon's policy judges it */
	CMD_ARGS_SECRET,	/* 1..SECRET_PW_MAX bytes, no control characters */
	CMD_ARGS_TEXT,		/* 0..KEYSET_HINT_MAX bytes, no control characters */
	CMD_ARGS_VERSION,	/* KEYSET VERSION: a keyset name, a version from 1 */
	CMD_ARGS_KEYSET,	/* KEYSET: a keyset name */
	CMD_ARGS_KEYFILE,	/* an identity file's text, as it is: lines of
				 * printable characters (and tabs), LF or CRLF;
				 * not empty; bounded by COMMAND_MAX like any
				 * command. The daemon's age_keys_identities()
				 * judges the keys. */
};

struct command {
	const char *verb;
	enum command_id id;
	enum command_args args;
	bool keyset_option;	/* "--keyset K" may follow the verb */
	bool secret;		/* the arguments are a secret: guarded memory, never logged */
	const char *synopsis;	/* as written to .control */
	const char *help;	/* one line */
	const char *refusal;	/* why refused arguments are refused; NULL: "usage: " synopsis */
};

/* Every command, in the order help lists them; ends with a NULL verb.
 * command_table[id] is the row of id. */
extern const struct command command_table[];

/* The row of a verb; NULL if there is none. */
const struct command *command_find(const char *verb);

enum command_error {
	CMD_OK,
	CMD_ERR_LENGTH,		/* COMMAND_MAX bytes or more, or a NUL byte */
	CMD_ERR_VERB,		/* no such command */
	CMD_ERR_KEYSET,		/* --keyset without a valid keyset name */
	CMD_ERR_ARGS,		/* arguments that do not fit the command */
};

/* One command, parsed. */
struct command_call {
	const struct command *cmd;		/* NULL for CMD_ERR_LENGTH and _VERB */
	enum command_error error;
	char keyset[KEYSET_NAME_MAX + 1];	/* --keyset's name; "" without */
	const char *arg;			/* the arguments, inside the parsed buffer: */
	size_t arglen;				/* not NUL-terminated */
	char name[KEYSET_NAME_MAX + 1];		/* CMD_ARGS_VERSION, _KEYSET: the keyset */
	unsigned version;			/* and its version */
	bool unauthenticated;			/* and "unauthenticated" after it */
};

/* Parses buf[0..len). 0, or -EINVAL with call->error saying why. buf is
 * only read: a secret in it stays where it is, and call->arg points to
 * it. */
int command_parse(const char *buf, size_t len, struct command_call *call);

/* Writes "VERB[ --keyset K][ ARGS]\n" into buf: keyset is used (and may be
 * NULL) only where the command takes it, arg only where it takes
 * arguments. Returns the length, or -ENOSPC if size is too small. Unchecked:
 * command_parse() tells whether keyfs would take it. */
int command_format(char *buf, size_t size, const struct command *cmd, const char *keyset,
		   const char *arg, size_t arglen);

/* Why a command was refused, in one line that never quotes an argument. */
void command_why(const struct command_call *call, char *buf, size_t size);

/* "password, unlock, ...": every verb, in table order. */
void command_verbs(char *buf, size_t size);

#endif
