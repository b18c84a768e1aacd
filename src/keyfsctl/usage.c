/* keyfsctl's usage text (usage.h): the .control commands in keyfsctl's
 * form, then its own. */
#include <stdio.h>
#include <string.h>

#include "keyfs/command.h"

#include "usage.h"

/* One line of the usage text: the help in a column, or below a long
 * synopsis. */
static void usage_line(FILE *f, const char *synopsis, const char *help)
{
	if (strlen(synopsis) < 34)
		fprintf(f, "  %-34s%s\n", synopsis, help);
	else
		fprintf(f, "  %s\n  %-34s%s\n", synopsis, "", help);
}

/* The keyfsctl form of a .control command: secrets are asked for, not
 * given, and password takes its hint too. */
static void command_synopsis(const struct command *cmd, char *buf, size_t size)
{
	static const char *const operands[] = {
		[CMD_ARGS_NONE] = "",
		[CMD_ARGS_PASSWORD] = "",
		[CMD_ARGS_SECRET] = "",
		[CMD_ARGS_TEXT] = " TEXT",
		[CMD_ARGS_VERSION] = " [--unauthenticated] KEYSET VERSION",
		[CMD_ARGS_KEYFILE] = " add FILE",
		[CMD_ARGS_KEYSET] = " KEYSET",
	};

	snprintf(buf, size, "%s%s%s%s%s", cmd->verb, cmd->secret ? " [--stdin]" : "",
		 cmd->keyset_option ? " [--keyset K]" : "",
		 cmd->id == CMD_PASSWORD ? " [--hint TEXT]" : "", operands[cmd->args]);
}

void usage(FILE *f)
{
	const struct command *cmd;
	char synopsis[128];

	fprintf(f, "usage: keyfsctl [-m MOUNTPOINT] [-a SOCKET] COMMAND [ARGS]\n\n");
	for (cmd = command_table; cmd->verb; cmd++) {
		command_synopsis(cmd, synopsis, sizeof(synopsis));
		usage_line(f, synopsis, cmd->help);
	}
	usage_line(f, "status", "print the status report");
	usage_line(f, "check [--warn AGE] [--crit AGE] [--never crit|warn|ok]",
		   "monitoring plugin: are keys backed up? (exit 0..3)");
	usage_line(f, "check --discover [--root DIR] [--config CONFIG]",
		   "... also warn of key locations no keyset covers");
	usage_line(f, "metrics", "print the metrics (Prometheus text format)");
	usage_line(f, "list [--json]", "every keyset, a line each (the status shows only some)");
	usage_line(f, "discover [--root DIR] [-c CONFIG] [--print-config] [--metrics FILE]",
		   "find keys that no keyset covers (exit 0 none, 1 some)");
	usage_line(f, "signer", "print keyfs' signing key as an allowed_signers line");
	usage_line(f, "verify FILE", "check a backup copy, restore nothing");
	usage_line(f, "import FILE", "restore a backup");
	usage_line(f, "restore [--dry-run|--activate [--unauthenticated]] FILE|DIR...",
		   "verify, plan and restore a whole backup (exit 0, 1 some refused)");
	usage_line(f, "agent add NAME [--stdin]", "give keyfs-agent a passphrase");
	usage_line(f, "agent add-identity [--stdin] FILE", "give keyfs-agent an identity file");
	fprintf(f, "  agent remove NAME | agent list\n\n"
		   "exit status: 0 ok, 1 error, 2 usage, 3 wrong password, 4 no password,\n"
		   "5 bad or damaged file. The mount point defaults to " DEFAULT_MOUNT ".\n");
}
