/* keyfs-agent: holds passphrases in locked memory and hands them to keyfs
 * over a Unix socket (protocol in keyfs/agent_proto.h), and identity files
 * (names "identity:...") which keyfs opens imports with.
 *
 * Single-threaded on purpose: one poll loop serves one client at a time,
 * each within CLIENT_TIMEOUT_MS, so no lock guards the passphrases and a
 * stuck client delays the others by at most that much. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/agent_proto.h"
#include "keyfs/harden.h"
#include "keyfs/log.h"

#include "agent_socket.h"

#define SLOTS 32
#define CLIENT_TIMEOUT_MS 2000
#define EXIT_USAGE 2
#define SEAL_NAME "backup"

struct slot {
	uint8_t name[AGENT_NAME_MAX + 1];
	uint8_t secret[AGENT_FIELD_MAX];
	size_t name_len;	/* 0: the slot is free */
	size_t secret_len;
	long long expires;	/* CLOCK_MONOTONIC ms; 0: never */
};

/* Everything that ever holds a passphrase, the request and reply buffers
 * included, in one sodium_malloc() region: guard pages and mlock come per
 * allocation, and RLIMIT_MEMLOCK is small. */
struct pool {
	struct slot slot[SLOTS];
	uint8_t rx[AGENT_FRAME_MAX];
	uint8_t tx[AGENT_FRAME_MAX + 4];
};

struct agent {
	struct pool *pool;
	unsigned long lifetime;	/* seconds; 0: passphrases never expire */
	uid_t uid;
	struct agent_socket sock;
	int sig_fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

struct options {
	bool foreground;
	bool debug;
	unsigned long lifetime;
	const char *path;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool field_is(const struct agent_field *f, const char *s)
{
	return f->len == strlen(s) && !memcmp(f->p, s, f->len);
}

static struct slot *find(struct agent *a, const uint8_t *name, size_t len)
{
	struct slot *s;

	for (s = a->pool->slot; s < a->pool->slot + SLOTS; s++)
		if (s->name_len == len && !memcmp(s->name, name, len))
			return s;
	return NULL;
}

static struct slot *free_slot(struct agent *a)
{
	struct slot *s;

	for (s = a->pool->slot; s < a->pool->slot + SLOTS; s++)
		if (!s->name_len)
			return s;
	return NULL;
}

static void wipe(struct slot *s, const char *why)
{
	log_msg(LOG_INFO, "%s %.*s", why, (int)s->name_len, (const char *)s->name);
	sodium_memzero(s, sizeof(*s));
}

static void expire_due(struct agent *a)
{
	long long now = now_ms();
	struct slot *s;

	for (s = a->pool->slot; s < a->pool->slot + SLOTS; s++)
		if (s->name_len && s->expires && s->expires <= now)
			wipe(s, "expired");
}

/* Milliseconds until the next passphrase expires, -1 if none will. */
static int next_expiry(struct agent *a)
{
	long long next = -1, left;
	struct slot *s;

	for (s = a->pool->slot; s < a->pool->slot + SLOTS; s++) {
		if (!s->name_len || !s->expires)
			continue;
		left = s->expires - now_ms();
		if (left < 0)
			left = 0;
		if (next < 0 || left < next)
			next = left;
	}
	return next > INT_MAX ? INT_MAX : (int)next;
}

static int reply(struct agent *a, uint8_t code, const struct agent_field *f, size_t n)
{
	return agent_encode(a->pool->tx, code, f, n);
}

static int reply_msg(struct agent *a, uint8_t code, const char *msg)
{
	struct agent_field f = { (const uint8_t *)msg, strlen(msg) };

	return reply(a, code, &f, 1);
}

static int do_add(struct agent *a, const struct agent_msg *m)
{
	const struct agent_field *name = &m->f[0], *secret = &m->f[1];
	struct slot *s;
	bool replaced;

	if (m->nfields != 2 || !agent_name_valid(name->p, name->len))
		return reply_msg(a, AGENT_EINVAL, "add takes a valid name and a passphrase");
	if (!secret->len)
		return reply_msg(a, AGENT_EINVAL, "empty passphrase");
	s = find(a, name->p, name->len);
	replaced = s != NULL;
	if (!s)
		s = free_slot(a);
	if (!s)
		return reply_msg(a, AGENT_ENOSPC, "agent full");
	sodium_memzero(s, sizeof(*s));
	memcpy(s->name, name->p, name->len);
	s->name_len = name->len;
	memcpy(s->secret, secret->p, secret->len);
	s->secret_len = secret->len;
	if (a->lifetime)
		s->expires = now_ms() + (long long)a->lifetime * 1000;
	log_msg(LOG_INFO, "%s %.*s", replaced ? "replaced" : "added", (int)name->len,
		(const char *)name->p);
	return reply(a, AGENT_OK, NULL, 0);
}

static int do_remove(struct agent *a, const struct agent_msg *m)
{
	struct slot *s;

	if (m->nfields != 1 || !agent_name_valid(m->f[0].p, m->f[0].len))
		return reply_msg(a, AGENT_EINVAL, "remove takes a valid name");
	s = find(a, m->f[0].p, m->f[0].len);
	if (!s)
		return reply_msg(a, AGENT_ENOENT, "no such name");
	wipe(s, "removed");
	return reply(a, AGENT_OK, NULL, 0);
}

static int do_list(struct agent *a, const struct agent_msg *m)
{
	struct agent_field f[SLOTS];
	struct slot *s;
	size_t n = 0;

	if (m->nfields)
		return reply_msg(a, AGENT_EINVAL, "list takes no fields");
	for (s = a->pool->slot; s < a->pool->slot + SLOTS; s++)
		if (s->name_len)
			f[n++] = (struct agent_field){ s->name, s->name_len };
	return reply(a, AGENT_OK, f, n);
}

/* How many of the first n fields fit in one frame. */
static size_t fitting(const struct agent_field *f, size_t n)
{
	size_t size = 2, i;

	for (i = 0; i < n && i < AGENT_FIELDS_MAX; i++) {
		if (size + 2 + f[i].len > AGENT_FRAME_MAX)
			break;
		size += 2 + f[i].len;
	}
	return i;
}

/* The keyset's own passphrase, backup:<keyset>, if held. */
static struct slot *own_slot(struct agent *a, const struct agent_field *keyset)
{
	uint8_t name[AGENT_NAME_MAX];
	const size_t pre = strlen(SEAL_NAME ":");

	if (!keyset->len)
		return NULL;
	memcpy(name, SEAL_NAME ":", pre);
	memcpy(name + pre, keyset->p, keyset->len);
	return find(a, name, pre + keyset->len);
}

/* The passphrase sealing uses: backup:<keyset> if held, else backup. */
static struct slot *seal_slot(struct agent *a, const struct agent_field *keyset)
{
	struct slot *s = own_slot(a, keyset);

	return s ? s : find(a, (const uint8_t *)SEAL_NAME, strlen(SEAL_NAME));
}

static int do_get(struct agent *a, const struct agent_msg *m)
{
	const size_t pre = strlen(SEAL_NAME ":");
	const struct agent_field *purpose = &m->f[0], *keyset = &m->f[1];
	struct agent_field f[SLOTS];
	struct slot *first, *s;
	size_t n = 0, fit;
	bool own, ids;

	if (m->nfields != 2 || (!field_is(purpose, "seal") && !field_is(purpose, "own") &&
				!field_is(purpose, "unseal") && !field_is(purpose, "identities")))
		return reply_msg(a, AGENT_EINVAL,
				 "get takes a purpose (seal, own, unseal, identities) and a keyset");
	own = field_is(purpose, "own");
	if ((keyset->len || own) && (keyset->len > AGENT_NAME_MAX - pre ||
				     !agent_name_valid(keyset->p, keyset->len)))
		return reply_msg(a, AGENT_EINVAL, "invalid keyset name");
	/* "own" tells a keyset's passphrase from the backup one, which
	 * "seal" answers alike */
	ids = field_is(purpose, "identities");
	first = ids ? NULL : own ? own_slot(a, keyset) : seal_slot(a, keyset);
	if (first)
		f[n++] = (struct agent_field){ first->secret, first->secret_len };
	/* an identity file is never tried as a passphrase, nor the reverse */
	if (ids || field_is(purpose, "unseal"))
		for (s = a->pool->slot; s < a->pool->slot + SLOTS; s++)
			if (s->name_len && s != first &&
			    agent_name_is_identity(s->name, s->name_len) == ids)
				f[n++] = (struct agent_field){ s->secret, s->secret_len };
	if (!n)
		return reply_msg(a, AGENT_ENOENT, "nothing held for this purpose");
	fit = fitting(f, n);
	if (fit < n)
		log_msg(LOG_WARNING, "%.*s: %zu of %zu secrets fit in one reply", (int)purpose->len,
			(const char *)purpose->p, fit, n);
	log_msg(LOG_DEBUG, "get %.*s: %zu secret(s)", (int)purpose->len,
		(const char *)purpose->p, fit);
	return reply(a, AGENT_OK, f, fit);
}

static int handle(struct agent *a, const struct agent_msg *m)
{
	switch (m->code) {
	case AGENT_ADD:
		return do_add(a, m);
	case AGENT_REMOVE:
		return do_remove(a, m);
	case AGENT_LIST:
		return do_list(a, m);
	case AGENT_GET:
		return do_get(a, m);
	default:
		return reply_msg(a, AGENT_EINVAL, "unknown request");
	}
}

/* One request, one reply. The request is read even from a peer that will
 * be refused, so that it reads our answer rather than a broken pipe. */
static void serve_client(struct agent *a, int fd)
{
	long long deadline = now_ms() + CLIENT_TIMEOUT_MS, left;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct agent_msg m;
	int ret, len;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen)) {
		log_msg(LOG_ERR, "SO_PEERCRED: %m");
		goto out;
	}
	ret = agent_recv(fd, a->pool->rx, &m, CLIENT_TIMEOUT_MS);
	if (cred.uid != a->uid && cred.uid != 0) {
		log_msg(LOG_WARNING, "refused uid %u (pid %d)", (unsigned)cred.uid, (int)cred.pid);
		len = reply_msg(a, AGENT_EACCES, "permission denied");
	} else if (ret == -EINVAL) {
		log_msg(LOG_WARNING, "malformed request from pid %d", (int)cred.pid);
		len = reply_msg(a, AGENT_EINVAL, "malformed request");
	} else if (ret) {
		log_msg(LOG_DEBUG, "client pid %d: %s", (int)cred.pid, strerror(-ret));
		goto out;
	} else {
		log_msg(LOG_DEBUG, "request %u from pid %d", m.code, (int)cred.pid);
		expire_due(a);
		len = handle(a, &m);
	}
	left = deadline - now_ms();
	if (len > 0)
		agent_send(fd, a->pool->tx, (size_t)len, left > 0 ? (int)left : 0);
out:
	sodium_memzero(a->pool->rx, sizeof(a->pool->rx));
	sodium_memzero(a->pool->tx, sizeof(a->pool->tx));
}

/* Returns 0 on SIGTERM/SIGINT, -errno if the loop itself fails. */
static int serve(struct agent *a)
{
	struct pollfd p[2] = {
		{ .fd = a->sock.listen_fd, .events = POLLIN },
		{ .fd = a->sig_fd, .events = POLLIN },
	};
	struct signalfd_siginfo si;
	int fd;

	for (;;) {
		expire_due(a);
		if (poll(p, 2, next_expiry(a)) < 0) {
			if (errno == EINTR)
				continue;
			log_msg(LOG_ERR, "poll: %m");
			return -errno;
		}
		if (p[1].revents & POLLIN) {
			if (read(a->sig_fd, &si, sizeof(si)) == sizeof(si))
				log_msg(LOG_INFO, "exiting on %s", strsignal((int)si.ssi_signo));
			return 0;
		}
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(a->sock.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_msg(LOG_ERR, "accept: %m");
			continue;
		}
		serve_client(a, fd);
		close(fd);
	}
}

/* No core dumps and no ptrace attach, or no agent: it holds passphrases. */
static int harden(void)
{
	int ret = harden_process();

	if (ret)
		log_msg(LOG_ERR, "cannot disable core dumps and ptrace attach: %s; not starting",
			strerror(-ret));
	return ret;
}

/* Locks every page the agent has and will have, so that no passphrase
 * copy (a stack frame, a libc buffer of a request) reaches swap; the
 * pool itself is locked by sodium_malloc() anyway. Only a warning when
 * the kernel refuses: as a user without CAP_IPC_LOCK, RLIMIT_MEMLOCK
 * (8 MiB by default) may not cover the whole process, and an agent
 * whose secrets sit in locked guarded memory is still safer than none,
 * which would send the user back to typing the passphrase. Once it
 * succeeds, the agent grows by little (one pool, no threads) beyond
 * what is locked here. */
static void lock_memory(void)
{
	if (mlockall(MCL_CURRENT | MCL_FUTURE))
		log_msg(LOG_WARNING, "cannot lock the agent's memory (%m; see ulimit -l): "
			"only the passphrases themselves are locked");
}

/* Background: the parent returns once the socket listens, so a script may
 * use the agent as soon as keyfs-agent exits. */
static int daemonize(void)
{
	pid_t pid;
	int fd;

	pid = fork();
	if (pid < 0) {
		log_msg(LOG_ERR, "fork: %m");
		return -errno;
	}
	if (pid > 0)
		_exit(0);
	if (setsid() < 0 || chdir("/"))
		return -errno;
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
	return 0;
}

/* SIGTERM and SIGINT arrive on a descriptor in the poll loop: no handler
 * runs between a check and a poll(), so none is lost. */
static int open_signals(struct agent *a)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	a->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return a->sig_fd < 0 ? -errno : 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: keyfs-agent [-f] [-d] [-t SECONDS] [-a SOCKET]\n\n"
		"Holds passphrases for keyfs in locked memory.\n\n"
		"  -f               stay in the foreground, log to stderr\n"
		"  -d               log every request (implies -f)\n"
		"  -t SECONDS       forget each passphrase SECONDS after it was added\n"
		"  -a SOCKET        listen on SOCKET (default $XDG_RUNTIME_DIR/keyfs/agent.sock,\n"
		"                   else /run/keyfs/agent.sock)\n"
		"  -h, --help       print this help\n"
		"  -V, --version    print the version\n");
}

/* Returns 0 to run, 1 after --help/--version, -1 on a usage error. */
static int parse_args(int argc, char *argv[], struct options *o)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "fdt:a:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			o->foreground = true;
			break;
		case 'd':
			o->debug = o->foreground = true;
			break;
		case 't':
			errno = 0;
			o->lifetime = strtoul(optarg, &end, 10);
			if (errno || *end || optarg[0] < '1' || optarg[0] > '9' ||
			    o->lifetime > UINT32_MAX) {
				fprintf(stderr, "keyfs-agent: -t takes a number of seconds (1 or more)\n");
				return -1;
			}
			break;
		case 'a':
			o->path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("keyfs-agent %s\n", KEYFS_VERSION);
			return 1;
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return -1;
	}
	return 0;
}

/* An absolute socket path, so that chdir("/") and exit find it again. */
static int resolve_path(const struct options *o, char *buf, size_t size)
{
	char cwd[PATH_MAX];
	int n;

	if (!o->path)
		return agent_default_path(buf, size) ? 0 : -ENAMETOOLONG;
	if (o->path[0] == '/')
		n = snprintf(buf, size, "%s", o->path);
	else if (getcwd(cwd, sizeof(cwd)))
		n = snprintf(buf, size, "%s/%s", cwd, o->path);
	else
		return -errno;
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int main(int argc, char *argv[])
{
	struct agent a = { .sock.listen_fd = -1, .sig_fd = -1, .uid = geteuid() };
	struct options o = { 0 };
	int ret;

	ret = parse_args(argc, argv, &o);
	if (ret)
		return ret > 0 ? 0 : EXIT_USAGE;
	a.lifetime = o.lifetime;
	log_init("keyfs-agent", true, o.debug);
	ret = resolve_path(&o, a.path, sizeof(a.path));
	a.sock.path = a.path;
	if (ret) {
		log_msg(LOG_ERR, "socket path: %s", strerror(-ret));
		return EXIT_FAILURE;
	}
	ret = EXIT_FAILURE;
	if (harden() || agent_socket_open(&a.sock))
		goto err_close;
	if (sodium_init() < 0) {
		log_msg(LOG_ERR, "libsodium failed to initialize");
		goto err_unlink;
	}
	if (!o.foreground) {
		if (daemonize())
			goto err_unlink;
		log_init("keyfs-agent", false, o.debug);
	}
	/* after fork(): a child does not inherit memory locks */
	lock_memory();
	a.pool = sodium_malloc(sizeof(*a.pool));
	if (!a.pool) {
		log_msg(LOG_ERR, "cannot allocate locked memory: %m");
		goto err_unlink;
	}
	sodium_memzero(a.pool, sizeof(*a.pool));
	if (open_signals(&a)) {
		log_msg(LOG_ERR, "signals: %m");
		goto err_free;
	}
	log_msg(LOG_INFO, "listening on %s", a.path);
	if (!serve(&a))
		ret = 0;
	close(a.sig_fd);
err_free:
	sodium_free(a.pool);	/* wipes every passphrase */
err_unlink:
	agent_socket_remove(&a.sock);
err_close:
	if (a.sock.listen_fd >= 0)
		close(a.sock.listen_fd);
	return ret;
}
