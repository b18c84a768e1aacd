/* keyfsctl: the administrator's front end to a mounted keyfs and to
 * keyfs-agent. Passwords are read from the terminal without echo (or from
 * standard input with --stdin) into guarded memory, and reach the daemon
 * through MNT/.control in one write(2), never through argv. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "keyfs/agent_proto.h"
#include "keyfs/config.h"
#include "keyfs/keyset.h"
#include "keyfs/secret.h"

#define DEFAULT_MOUNT "/mnt/keys"

/* Exit codes, documented in keyfsctl(1). */
enum {
	EX_OK = 0,
	EX_FAIL = 1,
	EX_USAGEERR = 2,
	EX_WRONGPW = 3,
	EX_NOPW = 4,
	EX_BADFILE = 5,
};

struct ctl_opts {
	const char *mount;
	const char *socket;
	const char *keyset;
	const char *hint;
	bool from_stdin;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: keyfsctl [-m MOUNTPOINT] [-a SOCKET] COMMAND [ARGS]\n\n"
		"  password [--stdin] [--keyset K] [--hint TEXT]\n"
		"                                    set the backup password (asks twice),\n"
		"                                    or keyset K's own password\n"
		"  unlock [--stdin]                  add a password to try on import\n"
		"  forget                            wipe every password from keyfs\n"
		"  hint [--keyset K] TEXT            set the password hint\n"
		"  status                            print the status report\n"
		"  activate KEYSET VERSION           make an inactive version active\n"
		"  verify FILE                       check a backup copy, restore nothing\n"
		"  import FILE                       restore a backup\n"
		"  agent add NAME [--stdin]          give keyfs-agent a passphrase\n"
		"  agent remove NAME | agent list\n\n"
		"exit status: 0 ok, 1 error, 2 usage, 3 wrong password, 4 no password,\n"
		"5 bad or damaged file. The mount point defaults to " DEFAULT_MOUNT ".\n");
}

static int exit_code(int err)
{
	switch (err) {
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

/* Reads one line into guarded memory without echo (terminal) or from
 * stdin. Returns its length or -1. */
static ssize_t read_secret(const char *prompt, bool from_stdin, char *buf, size_t size)
{
	struct termios old, quiet;
	bool tty = false;
	size_t len = 0;
	ssize_t n;
	char c;
	int fd;

	fd = from_stdin ? STDIN_FILENO : open("/dev/tty", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "keyfsctl: no terminal to ask for a password (use --stdin)\n");
		return -1;
	}
	if (!from_stdin && !tcgetattr(fd, &old)) {
		tty = true;
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(fd, TCSANOW, &quiet);
		(void)!write(fd, prompt, strlen(prompt));
	}
	/* byte by byte: nothing beyond the line is consumed or buffered */
	while ((n = read(fd, &c, 1)) == 1 && c != '\n') {
		if (len + 1 >= size) {
			len = size; /* too long: refused below */
			continue;
		}
		buf[len++] = c;
	}
	if (tty) {
		tcsetattr(fd, TCSANOW, &old);
		(void)!write(fd, "\n", 1);
	}
	if (!from_stdin)
		close(fd);
	sodium_memzero(&c, sizeof(c)); /* the last byte read, at EOF */
	if (n < 0 || (n == 0 && len == 0) || len >= size)
		return -1;
	if (len && buf[len - 1] == '\r')
		len--;
	return (ssize_t)len;
}

/* One command, one write(2): the errno of the write is the answer. */
static int control(const struct ctl_opts *o, const char *cmd, size_t len)
{
	char path[4096];
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/.control", o->mount);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	if (write(fd, cmd, len) != (ssize_t)len)
		err = errno ? errno : EIO;
	if (close(fd) && !err)
		err = errno;
	return err;
}

/* "verb <secret>\n" assembled in guarded memory. */
static int control_secret(const struct ctl_opts *o, const char *verb, const char *pw, size_t len)
{
	size_t vlen = strlen(verb);
	char *cmd;
	int err;

	cmd = sodium_malloc(vlen + len + 2);
	if (!cmd)
		return ENOMEM;
	memcpy(cmd, verb, vlen);
	memcpy(cmd + vlen, pw, len);
	cmd[vlen + len] = '\n';
	err = control(o, cmd, vlen + len + 1);
	sodium_free(cmd);
	return err;
}

static int report(const char *what, int err)
{
	if (err)
		fprintf(stderr, "keyfsctl: %s: %s\n", what, strerror(err));
	return exit_code(err);
}

/* hint [--keyset K] TEXT, from --hint or asked on the terminal. */
static int set_hint(const struct ctl_opts *o)
{
	char text[KEYSET_HINT_MAX + 2], cmd[KEYSET_HINT_MAX + 96];
	const char *hint = o->hint;

	if (!hint && !o->from_stdin && isatty(STDIN_FILENO)) {
		fprintf(stderr, "Password hint, kept in every export (Enter for none): ");
		if (!fgets(text, sizeof(text), stdin) || text[0] == '\n')
			return EX_OK;
		text[strcspn(text, "\n")] = '\0';
		hint = text;
	}
	if (!hint)
		return EX_OK;
	snprintf(cmd, sizeof(cmd), "hint %s%s%s%s\n", o->keyset ? "--keyset " : "",
		 o->keyset ? o->keyset : "", o->keyset ? " " : "", hint);
	return report("hint", control(o, cmd, strlen(cmd)));
}

static int cmd_password(const struct ctl_opts *o)
{
	char *pw = NULL, *again = NULL, verb[96];
	struct config defaults;
	const char *why;
	ssize_t n, m;
	int ret = EX_FAIL, err;

	config_defaults(&defaults);
	pw = sodium_malloc(SECRET_PW_MAX + 2);
	again = sodium_malloc(SECRET_PW_MAX + 2);
	if (!pw || !again)
		goto out;
	if (!o->from_stdin)
		fprintf(stderr, "A lost backup password cannot be recovered: every backup made with\n"
				"it is lost with it. Keep it where you keep other recovery secrets.\n");
	n = read_secret("New backup password: ", o->from_stdin, pw, SECRET_PW_MAX + 2);
	if (n < 0) {
		fprintf(stderr, "keyfsctl: no password read (at most %d bytes)\n", SECRET_PW_MAX);
		goto out;
	}
	if (policy_check(&defaults, pw, (size_t)n, &why)) {
		fprintf(stderr, "keyfsctl: password refused: %s\n", why);
		ret = EX_USAGEERR;
		goto out;
	}
	if (!o->from_stdin) {
		m = read_secret("Repeat the password: ", false, again, SECRET_PW_MAX + 2);
		if (m != n || sodium_memcmp(pw, again, (size_t)n)) {
			fprintf(stderr, "keyfsctl: the passwords do not match; nothing changed\n");
			ret = EX_USAGEERR;
			goto out;
		}
	}
	snprintf(verb, sizeof(verb), "password %s%s%s", o->keyset ? "--keyset " : "",
		 o->keyset ? o->keyset : "", o->keyset ? " " : "");
	err = control_secret(o, verb, pw, (size_t)n);
	if (err == EINVAL)
		fprintf(stderr, "keyfsctl: keyfs refused the password (its policy is stricter; see its log)\n");
	ret = report("password", err);
	if (ret)
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
	ssize_t n;
	char *pw;
	int ret;

	pw = sodium_malloc(SECRET_PW_MAX + 2);
	if (!pw)
		return EX_FAIL;
	n = read_secret("Password to try on import: ", o->from_stdin, pw, SECRET_PW_MAX + 2);
	ret = n < 0 ? EX_USAGEERR : report("unlock", control_secret(o, "unlock ", pw, (size_t)n));
	sodium_free(pw);
	return ret;
}

static int cmd_status(const struct ctl_opts *o)
{
	char path[4096], buf[4096];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/.control", o->mount);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return report(path, errno);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stdout);
	close(fd);
	return n < 0 ? report(path, errno) : EX_OK;
}

/* Copies file into MNT/<dir>/ and reports close(2)'s verdict in words. */
static int cmd_copy_in(const struct ctl_opts *o, const char *dir, const char *file)
{
	char path[4096], buf[65536], *copy;
	const char *base;
	ssize_t n = 0;
	int in, out, err = 0;

	in = open(file, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return report(file, errno);
	copy = strdup(file);
	base = copy ? basename(copy) : "backup";
	snprintf(path, sizeof(path), "%s/%s/%s", o->mount, dir, base);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		err = errno;
		goto out;
	}
	while (!err && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			err = errno ? errno : EIO;
	if (n < 0 && !err)
		err = errno;
	if (close(out) && !err)
		err = errno; /* the outcome of the import or verify */
	unlink(path);
out:
	close(in);
	if (!err)
		printf("%s: %s\n", file, !strcmp(dir, "verify") ? "good copy" : "restored (see status)");
	else if (err == EKEYREJECTED)
		fprintf(stderr, "%s: no password keyfs holds opens it\n", file);
	else if (err == ENOKEY)
		fprintf(stderr, "%s: keyfs has no password at all (keyfsctl password or unlock)\n", file);
	else if (err == EBADMSG)
		fprintf(stderr, "%s: damaged or truncated copy\n", file);
	else if (err == EINVAL)
		fprintf(stderr, "%s: not a keyfs backup (not age, or a bad or unsafe archive)\n", file);
	else
		fprintf(stderr, "%s: %s\n", file, strerror(err));
	free(copy);
	return exit_code(err);
}

static int agent_reply(const char *sock, const char *what, int ret, const struct agent_msg *m)
{
	if (ret == -EPERM) {
		/* sudo -E keeps the user's $XDG_RUNTIME_DIR: say whose agent
		 * that is, and that it got nothing */
		fprintf(stderr,
			"keyfsctl: agent %s runs as uid %u, not as uid %u or root: refused, nothing sent\n"
			"keyfsctl: name the right socket with -a SOCKET\n",
			sock, (unsigned)m->uid, (unsigned)geteuid());
		return EX_FAIL;
	}
	if (ret) {
		fprintf(stderr, "keyfsctl: agent: %s\n", strerror(-ret));
		return EX_FAIL;
	}
	if (m->code == AGENT_OK)
		return EX_OK;
	fprintf(stderr, "keyfsctl: agent refused %s: %.*s\n", what,
		m->nfields ? (int)m->f[0].len : 0, m->nfields ? (const char *)m->f[0].p : "");
	return EX_FAIL;
}

static int cmd_agent(const struct ctl_opts *o, int argc, char **argv)
{
	char path[4096], *pw = NULL;
	const char *sock = o->socket ? o->socket : agent_default_path(path, sizeof(path));
	struct agent_field f[2];
	struct agent_msg m;
	uint8_t *buf;
	ssize_t n;
	size_t i;
	int ret = EX_USAGEERR;

	buf = sodium_malloc(AGENT_FRAME_MAX);
	if (!buf)
		return EX_FAIL;
	if (argc == 1 && !strcmp(argv[0], "list")) {
		ret = agent_reply(sock, "list", agent_call(sock, AGENT_LIST, NULL, 0, buf, &m, 2000), &m);
		for (i = 0; !ret && i < m.nfields; i++)
			printf("%.*s\n", (int)m.f[i].len, (const char *)m.f[i].p);
	} else if (argc == 2 && !strcmp(argv[0], "remove")) {
		f[0] = (struct agent_field){ (const uint8_t *)argv[1], strlen(argv[1]) };
		ret = agent_reply(sock, "remove", agent_call(sock, AGENT_REMOVE, f, 1, buf, &m, 2000), &m);
	} else if (argc == 2 && !strcmp(argv[0], "add")) {
		pw = sodium_malloc(SECRET_PW_MAX + 2);
		n = pw ? read_secret("Passphrase for the agent: ", o->from_stdin, pw, SECRET_PW_MAX + 2) : -1;
		if (n <= 0)
			goto out;
		f[0] = (struct agent_field){ (const uint8_t *)argv[1], strlen(argv[1]) };
		f[1] = (struct agent_field){ (const uint8_t *)pw, (size_t)n };
		ret = agent_reply(sock, "add", agent_call(sock, AGENT_ADD, f, 2, buf, &m, 2000), &m);
	} else {
		usage(stderr);
	}
out:
	sodium_free(pw);
	sodium_free(buf);
	return ret;
}

static int run(const struct ctl_opts *o, int argc, char **argv)
{
	char cmd[4096];
	const char *verb = argv[0];

	if (!strcmp(verb, "password") && argc == 1)
		return cmd_password(o);
	if (!strcmp(verb, "unlock") && argc == 1)
		return cmd_unlock(o);
	if (!strcmp(verb, "status") && argc == 1)
		return cmd_status(o);
	if (!strcmp(verb, "forget") && argc == 1)
		return report("forget", control(o, "forget\n", 7));
	if (!strcmp(verb, "hint") && argc == 2) {
		struct ctl_opts ho = *o;

		ho.hint = argv[1];
		return set_hint(&ho);
	}
	if (!strcmp(verb, "activate") && argc == 3) {
		snprintf(cmd, sizeof(cmd), "activate %s %s\n", argv[1], argv[2]);
		return report("activate", control(o, cmd, strlen(cmd)));
	}
	if ((!strcmp(verb, "verify") || !strcmp(verb, "import")) && argc == 2)
		return cmd_copy_in(o, verb, argv[1]);
	if (!strcmp(verb, "agent") && argc >= 2)
		return cmd_agent(o, argc - 1, argv + 1);
	usage(stderr);
	return EX_USAGEERR;
}

int main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "stdin", no_argument, NULL, 's' },
		{ "hint", required_argument, NULL, 'H' },
		{ "keyset", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl_opts o = { .mount = DEFAULT_MOUNT };
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
			usage(stderr);
			return EX_USAGEERR;
		}
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
	optind = 0; /* glibc: 0 also resets getopt's permutation state */
	while ((c = getopt_long(argc, argv, "m:a:", longopts, NULL)) != -1) {
		if (c == 's')
			o.from_stdin = true;
		else if (c == 'H')
			o.hint = optarg;
		else if (c == 'k')
			o.keyset = optarg;
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
	return run(&o, argc - optind + 1, argv + optind - 1);
}
