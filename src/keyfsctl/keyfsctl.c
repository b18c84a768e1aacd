/* keyfsctl: the administrator's front end to a mounted keyfs and to
 * keyfs-agent. Passwords are read from the terminal without echo (or from
 * standard input with --stdin) into guarded memory, and reach the daemon
 * through MNT/.control in one write(2), never through argv. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdbool.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keyfs/agent_proto.h"
#include "keyfs/command.h"
#include "keyfs/config.h"
#include "keyfs/keyset.h"
#include "keyfs/policy.h"
#include "keyfs/vault.h"

#include "agent_reply.h"
#include "check.h"
#include "discover.h"
#include "list.h"
#include "idfile.h"
#include "outcome.h"
#include "prompt.h"
#include "restore.h"
#include "usage.h"

/* Exit codes, documented in keyfsctl(1). main() alone turns an error
 * into one of these; everything below returns 0 or -errno. */
enum {
	EX_OK = 0,
	EX_FAIL = 1,
	EX_USAGEERR = 2,
	EX_WRONGPW = 3,
	EX_NOPW = 4,
	EX_BADFILE = 5,
};

/* Refused here, before anything reached keyfs or the agent: bad usage, a
 * password the policy refuses, a confirmation that differs (exit 2).
 * Neither keyfs nor the kernel answers a write with it, so it cannot be
 * mistaken for their EINVAL (exit 5). */
#define E_REFUSED ECANCELED

struct ctl_opts {
	const char *mount;
	const char *socket;
	const char *keyset;
	const char *hint;
	bool from_stdin;
	bool unauthenticated;	/* activate: a version no signature vouches for */
};

/* One command, one write(2): the errno of the write is the answer. */
static int control(const struct ctl_opts *o, const char *cmd, size_t len)
{
	char path[4096];
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/.control", o->mount);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, cmd, len) != (ssize_t)len)
		err = errno ? -errno : -EIO;
	if (close(fd) && !err)
		err = -errno;
	return err;
}

/* Builds a .control command as command.h says and checks it the way keyfs
 * will parse it, so that nothing keyfs would refuse is sent (and nothing
 * is asked of the user that keyfs would refuse anyway). The reason is
 * printed; the error is keyfs' own for it, -EINVAL. */
static int build(const struct ctl_opts *o, const struct command *cmd, const char *arg, size_t arglen,
		 char *buf, size_t size, size_t *len)
{
	struct command_call call;
	char why[256];
	int n;

	n = command_format(buf, size, cmd, o->keyset, arg, arglen);
	if (n < 0) {
		call = (struct command_call){ .error = CMD_ERR_LENGTH };
	} else if (!command_parse(buf, (size_t)n, &call)) {
		*len = (size_t)n;
		return 0;
	}
	command_why(&call, why, sizeof(why));
	fprintf(stderr, "keyfsctl: %s\n", why);
	return -EINVAL;
}

/* Builds, checks and sends a command; a secret one is assembled in
 * guarded memory. *sent (if not NULL) tells whether keyfs answered. */
static int send_command(const struct ctl_opts *o, enum command_id id, const char *arg, size_t arglen,
			bool *sent)
{
	const struct command *cmd = &command_table[id];
	size_t size = COMMAND_MAX + 1, len;
	char *buf;
	int ret;

	buf = cmd->secret ? sodium_malloc(size) : malloc(size);
	if (!buf)
		return -ENOMEM;
	ret = build(o, cmd, arg, arglen, buf, size, &len);
	if (sent)
		*sent = !ret;
	if (!ret)
		ret = control(o, buf, len);
	if (cmd->secret)
		sodium_free(buf);
	else
		free(buf);
	return ret;
}

static int report(const char *what, int err)
{
	if (err)
		fprintf(stderr, "keyfsctl: %s: %s\n", what, strerror(-err));
	return err;
}

/* hint [--keyset K] TEXT, from --hint or asked on the terminal. */
static int set_hint(const struct ctl_opts *o)
{
	char text[KEYSET_HINT_MAX + 2];
	const char *hint = o->hint;

	if (!hint && !o->from_stdin && isatty(STDIN_FILENO)) {
		fprintf(stderr, "Password hint, kept in every export (Enter for none): ");
		if (!fgets(text, sizeof(text), stdin) || text[0] == '\n')
			return 0;
		text[strcspn(text, "\n")] = '\0';
		hint = text;
	}
	if (!hint)
		return 0;
	return report("hint", send_command(o, CMD_HINT, hint, strlen(hint), NULL));
}

static int cmd_password(const struct ctl_opts *o)
{
	char *pw = NULL, *again = NULL;
	struct config defaults;
	size_t n, m;
	const char *why;
	bool sent;
	int ret = -ENOMEM;

	config_defaults(&defaults);
	pw = sodium_malloc(SECRET_PW_MAX + 2);
	again = sodium_malloc(SECRET_PW_MAX + 2);
	if (!pw || !again)
		goto out;
	if (!o->from_stdin)
		fprintf(stderr, "A lost backup password cannot be recovered: every backup made with\n"
				"it is lost with it. Keep it where you keep other recovery secrets.\n");
	ret = prompt_secret("New backup password: ", o->from_stdin, pw, SECRET_PW_MAX + 2, &n);
	if (ret) {
		fprintf(stderr, "keyfsctl: no password read (at most %d bytes)\n", SECRET_PW_MAX);
		goto out;
	}
	if (policy_check(&defaults, pw, n, &why)) {
		fprintf(stderr, "keyfsctl: password refused: %s\n", why);
		ret = -E_REFUSED;
		goto out;
	}
	if (!o->from_stdin) {
		ret = prompt_secret("Repeat the password: ", false, again, SECRET_PW_MAX + 2, &m);
		if (ret || m != n || sodium_memcmp(pw, again, n)) {
			fprintf(stderr, "keyfsctl: the passwords do not match; nothing changed\n");
			ret = -E_REFUSED;
			goto out;
		}
	}
	ret = send_command(o, CMD_PASSWORD, pw, n, &sent);
	/* keyfs' own policy may be stricter than the default checked above */
	if (ret == -EINVAL && sent)
		fprintf(stderr, "keyfsctl: keyfs refused the password (its policy is stricter; see its log)\n");
	if (report("password", ret))
		goto out;
	ret = set_hint(o);
	if (!ret)
		fprintf(stderr, "keyfsctl: backup password set\n");
out:
	sodium_free(pw);
	sodium_free(again);
	return ret;
}
static int cmd_unlock(const struct ctl_opts *o)
{
	size_t n;
	char *pw;
	int ret;

	pw = sodium_malloc(SECRET_PW_MAX + 2);
	if (!pw)
		return -ENOMEM;
	ret = prompt_secret("Password to try on import: ", o->from_stdin, pw, SECRET_PW_MAX + 2, &n);
	if (ret)
		ret = -E_REFUSED; /* nothing read, nothing sent */
	else
		ret = report("unlock", send_command(o, CMD_UNLOCK, pw, n, NULL));
	sodium_free(pw);
	return ret;
}

static int cmd_status(const struct ctl_opts *o)
{
	char path[4096], buf[4096];
	ssize_t n;
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/.control", o->mount);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return report(path, -errno);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stdout);
	if (n < 0)
		ret = report(path, -errno);
	close(fd);
	return ret;
}

/* The status' "signer: " line, which comes first: the allowed_signers
 * line of the key keyfs signs its exports with. */
static int cmd_signer(const struct ctl_opts *o)
{
	char path[4096], *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f;
	int ret = -ENOENT;

	snprintf(path, sizeof(path), "%s/.control", o->mount);
	f = fopen(path, "re");
	if (!f)
		return report(path, -errno);
	while (ret == -ENOENT && (n = getline(&line, &cap, f)) > 0) {
		if (!strncmp(line, "signer: ", 8)) {
			fputs(line + 8, stdout);
			ret = 0;
		}
	}
	free(line);
	fclose(f);
	if (ret)
		fprintf(stderr, "keyfsctl: keyfs at %s names no signing key\n", o->mount);
	return ret;
}

/* refresh KEYSET: a run that failed is told as the status has it
 * ("backup_command KEYSET: exited 2 at ...: its stderr"). */
static int refresh(const struct ctl_opts *o, const char *keyset)
{
	char path[4096], want[KEYSET_NAME_MAX + 32], *line = NULL;
	size_t cap = 0, wlen;
	bool told = false;
	FILE *f;
	int ret;

	ret = send_command(o, CMD_REFRESH, keyset, strlen(keyset), NULL);
	if (ret == -ENOENT) {
		fprintf(stderr, "keyfsctl: refresh: %s is not a keyset with a backup_command\n",
			keyset);
		return ret;
	}
	if (ret == 0 || ret == -EINVAL)
		return report("refresh", ret);
	wlen = (size_t)snprintf(want, sizeof(want), "backup_command %s: ", keyset);
	snprintf(path, sizeof(path), "%s/.control", o->mount);
	f = fopen(path, "re");
	while (f && !told && getline(&line, &cap, f) > 0) {
		if (!strncmp(line, want, wlen)) {
			fprintf(stderr, "keyfsctl: refresh %s: %s", keyset, line + wlen);
			told = true;
		}
	}
	free(line);
	if (f)
		fclose(f);
	return told ? ret : report("refresh", ret);
}

/* activate KEYSET VERSION: a failure is told as keyfs recorded it (the
 * versions there are, or the hook that failed after the keys went in). */
static int activate(const struct ctl_opts *o, const char *args, size_t len)
{
	char line[8192];
	int ret;

	ret = send_command(o, CMD_ACTIVATE, args, len, NULL);
	if (ret && (ret == -ENOENT || ret == -ECHILD || ret == -EKEYREJECTED) &&
	    outcome_last(o->mount, line, sizeof(line)) == 0)
		fprintf(stderr, "keyfsctl: %s\n", line);
	else
		report("activate", ret);
	return ret;
}

static int restore_activate(void *arg, const char *keyset, unsigned version, bool unauthenticated)
{
	char args[KEYSET_NAME_MAX + 48];
	int n;

	n = snprintf(args, sizeof(args), "%s %u%s", keyset, version,
		     unauthenticated ? " unauthenticated" : "");
	return activate(arg, args, (size_t)n);
}

/* identity add FILE, and agent add-identity FILE (sock and buf set): the
 * file checked, and opened with its passphrase if encrypted, first. */
static int add_identity(const struct ctl_opts *o, const char *sock, uint8_t *buf, const char *file)
{
	char name[AGENT_NAME_MAX + 1] = "", *text;
	struct agent_field f[2];
	struct agent_msg m;
	size_t len;
	int ret;

	ret = idfile_load(file, o->from_stdin, &text, &len);
	if (ret)
		return ret;
	if (!sock)
		ret = report("identity", send_command(o, CMD_IDENTITY, text, len, NULL));
	else
		ret = report(file, idfile_agent_name(text, len, name, sizeof(name)));
	f[0] = (struct agent_field){ (const uint8_t *)name, strlen(name) };
	f[1] = (struct agent_field){ (const uint8_t *)text, len };
	if (!ret && sock)
		ret = agent_reply(sock, "add-identity", agent_call(sock, AGENT_ADD, f, 2, buf, &m, 2000), &m);
	if (!ret && sock)
		printf("%s\n", name);
	sodium_free(text);
	return ret;
}

static int cmd_agent(const struct ctl_opts *o, int argc, char **argv)
{
	char path[4096], *pw = NULL;
	const char *sock = o->socket ? o->socket : agent_default_path(path, sizeof(path));
	struct agent_field f[2];
	struct agent_msg m;
	uint8_t *buf;
	size_t i, n;
	int ret = -E_REFUSED;

	buf = sodium_malloc(AGENT_FRAME_MAX);
	if (!buf)
		return -ENOMEM;
	if (argc == 1 && !strcmp(argv[0], "list")) {
		ret = agent_reply(sock, "list", agent_call(sock, AGENT_LIST, NULL, 0, buf, &m, 2000), &m);
		for (i = 0; !ret && i < m.nfields; i++)
			printf("%.*s\n", (int)m.f[i].len, (const char *)m.f[i].p);
	} else if (argc == 2 && !strcmp(argv[0], "remove")) {
		f[0] = (struct agent_field){ (const uint8_t *)argv[1], strlen(argv[1]) };
		ret = agent_reply(sock, "remove", agent_call(sock, AGENT_REMOVE, f, 1, buf, &m, 2000), &m);
	} else if (argc == 2 && !strcmp(argv[0], "add-identity")) {
		ret = add_identity(o, sock, buf, argv[1]);
	} else if (argc == 2 && !strcmp(argv[0], "add") &&
		   agent_name_is_identity((const uint8_t *)argv[1], strlen(argv[1]))) {
		fprintf(stderr, "keyfsctl: names starting \"" AGENT_IDENTITY_PREFIX "\" hold identities: "
			"use agent add-identity\n");
	} else if (argc == 2 && !strcmp(argv[0], "add")) {
		pw = sodium_malloc(SECRET_PW_MAX + 2);
		if (!pw) {
			ret = -ENOMEM;
			goto out;
		}
		/* nothing read (or an empty line): nothing sent */
		if (prompt_secret("Passphrase for the agent: ", o->from_stdin, pw, SECRET_PW_MAX + 2, &n) || !n)
			goto out;
		f[0] = (struct agent_field){ (const uint8_t *)argv[1], strlen(argv[1]) };
		f[1] = (struct agent_field){ (const uint8_t *)pw, n };
		ret = agent_reply(sock, "add", agent_call(sock, AGENT_ADD, f, 2, buf, &m, 2000), &m);
	} else {
		usage(stderr);
	}
out:
	sodium_free(pw);
	sodium_free(buf);
	return ret;
}

/* A .control command as keyfsctl takes it: its operands on the command
 * line (secrets are asked for), options from o. */
static int run_command(const struct ctl_opts *o, const struct command *cmd, int argc, char **argv)
{
	static const int operands[] = {
		[CMD_ARGS_NONE] = 0,
		[CMD_ARGS_PASSWORD] = 0,
		[CMD_ARGS_SECRET] = 0,
		[CMD_ARGS_TEXT] = 1,
		[CMD_ARGS_VERSION] = 2,
		[CMD_ARGS_KEYSET] = 1,
		[CMD_ARGS_KEYFILE] = 2,
	};
	struct ctl_opts ho = *o;
	char args[COMMAND_MAX + 1];
	int n;

	if (argc != 1 + operands[cmd->args]) {
		usage(stderr);
		return -E_REFUSED;
	}
	switch (cmd->id) {
	case CMD_PASSWORD:
		return cmd_password(o);
	case CMD_UNLOCK:
		return cmd_unlock(o);
	case CMD_FORGET:
		return report("forget", send_command(o, CMD_FORGET, NULL, 0, NULL));
	case CMD_HINT:
		ho.hint = argv[1];
		return set_hint(&ho);
	case CMD_ACTIVATE:
		n = snprintf(args, sizeof(args), "%s %s%s", argv[1], argv[2],
			     o->unauthenticated ? " unauthenticated" : "");
		if (n < 0 || (size_t)n >= sizeof(args))
			n = sizeof(args); /* too long: refused by build() */
		return activate(o, args, (size_t)n);
	case CMD_IDENTITY:
		if (strcmp(argv[1], "add")) {
			usage(stderr);
			return -E_REFUSED;
		}
		return add_identity(o, NULL, NULL, argv[2]);
	case CMD_RELOAD:
		return report("reload", send_command(o, CMD_RELOAD, NULL, 0, NULL));
	case CMD_REFRESH:
		return refresh(o, argv[1]);
	}
	return -E_REFUSED;
}

static int run(const struct ctl_opts *o, int argc, char **argv)
{
	const struct command *cmd = command_find(argv[0]);
	const char *verb = argv[0];

	if (cmd)
		return run_command(o, cmd, argc, argv);
	if (!strcmp(verb, "status") && argc == 1)
		return cmd_status(o);
	if (!strcmp(verb, "signer") && argc == 1)
		return cmd_signer(o);
	if ((!strcmp(verb, "verify") || !strcmp(verb, "import")) && argc == 2)
		return outcome_copy_in(o->mount, verb, argv[1]);
	if (!strcmp(verb, "agent") && argc >= 2)
		return cmd_agent(o, argc - 1, argv + 1);
	usage(stderr);
	return -E_REFUSED;
}

/* The exit status of a command's result (keyfsctl(1)). The agent's
 * errors are all "error": none of them is about a backup file. */
static int exit_code(const char *verb, int err)
{
	if (err == -E_REFUSED)
		return EX_USAGEERR;
	if (err && !strcmp(verb, "agent"))
		return EX_FAIL;
	switch (-err) {
	case 0:
		return EX_OK;
	case EKEYREJECTED:
		return EX_WRONGPW;
	case ENOKEY:
		return EX_NOPW;
	case EINVAL:
	case EBADMSG:
	case EFBIG:
		return EX_BADFILE;
	default:
		return EX_FAIL;
	}
}

int main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "stdin", no_argument, NULL, 's' },
		{ "hint", required_argument, NULL, 'H' },
		{ "keyset", required_argument, NULL, 'k' },
		{ "unauthenticated", no_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl_opts o = { .mount = DEFAULT_MOUNT };
	const char *verb;
	bool bad = false;
	int c;

	while ((c = getopt_long(argc, argv, "+m:a:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			o.mount = optarg;
			break;
		case 'a':
			o.socket = optarg;
			break;
		case 's':
			o.from_stdin = true;
			break;
		case 'H':
			o.hint = optarg;
			break;
		case 'h':
			usage(stdout);
			return EX_OK;
		case 'V':
			printf("keyfsctl %s\n", KEYFS_VERSION);
			return EX_OK;
		default:
			/* parse on: the command decides the exit status */
			bad = true;
			break;
		}
	}
	if (bad) {
		usage(stderr);
		/* a monitoring plugin's usage error is UNKNOWN, not CRITICAL */
		if (optind < argc && !strcmp(argv[optind], "check")) {
			printf("KEYFS UNKNOWN - bad option\n");
			return CHECK_UNKNOWN;
		}
		return EX_USAGEERR;
	}
	if (optind >= argc) {
		usage(stderr);
		return EX_USAGEERR;
	}
	if (sodium_init() < 0)
		return EX_FAIL;
	/* Options may also follow the command (keyfsctl password --stdin):
	 * parse the rest with the command in argv[0]'s place. */
	argv += optind;
	argc -= optind;
	verb = argv[0];
	/* monitoring plugins keep their own options and exit codes */
	if (!strcmp(verb, "check"))
		return check_main(o.mount, argc, argv);
	if (!strcmp(verb, "metrics"))
		return check_metrics_main(o.mount, argc, argv);
	if (!strcmp(verb, "discover"))
		return discover_main(argc, argv);
	if (!strcmp(verb, "list"))
		return list_main(o.mount, argc, argv);
	if (!strcmp(verb, "restore"))
		return restore_main(o.mount, argc, argv, restore_activate, &o);
	optind = 0; /* glibc: 0 also resets getopt's permutation state */
	while ((c = getopt_long(argc, argv, "m:a:", longopts, NULL)) != -1) {
		if (c == 's')
			o.from_stdin = true;
		else if (c == 'H')
			o.hint = optarg;
		else if (c == 'k')
			o.keyset = optarg;
		else if (c == 'u')
			o.unauthenticated = true;
		else if (c == 'm')
			o.mount = optarg;
		else if (c == 'a')
			o.socket = optarg;
		else
			return EX_USAGEERR;
	}
	if (optind < 1)
		optind = 1;
	argv[optind - 1] = argv[0]; /* the command before its operands */
	return exit_code(verb, run(&o, argc - optind + 1, argv + optind - 1));
}
