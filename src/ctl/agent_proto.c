/* The keyfs-agent protocol: frame parsing and encoding on plain buffers
 * (so a fuzzer can drive them), and frame I/O with one deadline. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/agent_proto.h"

#define HDR_LEN 4	/* u32be length prefix */
#define BODY_HDR_LEN 2	/* version, code */

_Static_assert(AGENT_FIELD_MAX <= UINT16_MAX, "field length must fit its u16 prefix");
_Static_assert(AGENT_NAME_MAX <= AGENT_FIELD_MAX, "a name is a field");

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

int agent_parse(const uint8_t *body, size_t len, struct agent_msg *m)
{
	size_t pos = BODY_HDR_LEN, flen;

	if (len < BODY_HDR_LEN || len > AGENT_FRAME_MAX || body[0] != AGENT_PROTO_VERSION)
		return -EINVAL;
	m->code = body[1];
	m->nfields = 0;
	while (pos < len) {
		if (len - pos < 2 || m->nfields == AGENT_FIELDS_MAX)
			return -EINVAL;
		flen = (size_t)body[pos] << 8 | body[pos + 1];
		pos += 2;
		if (flen > AGENT_FIELD_MAX || flen > len - pos || memchr(body + pos, 0, flen))
			return -EINVAL;
		m->f[m->nfields].p = body + pos;
		m->f[m->nfields].len = flen;
		m->nfields++;
		pos += flen;
	}
	return 0;
}

int agent_encode(uint8_t *buf, uint8_t code, const struct agent_field *f, size_t n)
{
	size_t pos = HDR_LEN, i;

	if (n > AGENT_FIELDS_MAX)
		return -EMSGSIZE;
	buf[pos++] = AGENT_PROTO_VERSION;
	buf[pos++] = code;
	for (i = 0; i < n; i++) {
		if (f[i].len > AGENT_FIELD_MAX || 2 + f[i].len > AGENT_FRAME_MAX + HDR_LEN - pos)
			return -EMSGSIZE;
		/* the parser would refuse it: say so here, where it is a bug */
		if (memchr(f[i].p, 0, f[i].len))
			return -EINVAL;
		buf[pos++] = f[i].len >> 8;
		buf[pos++] = f[i].len;
		memcpy(buf + pos, f[i].p, f[i].len);
		pos += f[i].len;
	}
	put_be32(buf, pos - HDR_LEN);
	return (int)pos;
}

/* Not isalnum(): the set must not depend on the locale. */
static bool name_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == ':' || c == '-';
}

bool agent_name_valid(const uint8_t *p, size_t len)
{
	size_t i;

	if (len < 1 || len > AGENT_NAME_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (!name_char(p[i]))
			return false;
	return true;
}

bool agent_name_is_identity(const uint8_t *p, size_t len)
{
	const size_t n = strlen(AGENT_IDENTITY_PREFIX);

	return len > n && !memcmp(p, AGENT_IDENTITY_PREFIX, n);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline passes. */
static int wait_fd(int fd, short events, long long deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	long long left;
	int ret;

	for (;;) {
		left = deadline - now_ms();
		ret = poll(&p, 1, left > 0 ? (int)left : 0);
		if (ret > 0)
			return 0;
		if (ret < 0 && errno != EINTR)
			return -errno;
		if (ret == 0 && left <= 0)
			return -ETIMEDOUT;
	}
}

/* The result of one send() or recv(): 1 to retry, else 0 or -errno. */
static int io_step(ssize_t n, size_t *done)
{
	if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return 1;
	if (n < 0)
		return errno == ECONNRESET ? -EPIPE : -errno;
	if (n == 0)
		return -EPIPE;	/* the peer closed mid-frame */
	*done += (size_t)n;
	return 0;
}

/* The socket may be blocking or not: poll first, then one call that
 * cannot block, so a peer that stops reading costs at most the deadline. */
static int write_all(int fd, const uint8_t *p, size_t len, long long deadline)
{
	size_t done = 0;
	int ret;

	while (done < len) {
		ret = wait_fd(fd, POLLOUT, deadline);
		if (!ret)
			ret = io_step(send(fd, p + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT),
				      &done);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int read_all(int fd, uint8_t *p, size_t len, long long deadline)
{
	size_t done = 0;
	int ret;

	while (done < len) {
		ret = wait_fd(fd, POLLIN, deadline);
		if (!ret)
			ret = io_step(recv(fd, p + done, len - done, MSG_DONTWAIT), &done);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int send_until(int fd, const uint8_t *frame, size_t len, long long deadline)
{
	if (len < HDR_LEN + BODY_HDR_LEN || len > AGENT_FRAME_MAX + HDR_LEN ||
	    get_be32(frame) != len - HDR_LEN)
		return -EINVAL;
	return write_all(fd, frame, len, deadline);
}

static int recv_until(int fd, uint8_t *buf, struct agent_msg *m, long long deadline)
{
	uint8_t hdr[HDR_LEN];
	uint32_t len;
	int ret;

	ret = read_all(fd, hdr, sizeof(hdr), deadline);
	if (ret)
		return ret;
	len = get_be32(hdr);
	/* refuse before reading: the length is the peer's word, not ours */
	if (len < BODY_HDR_LEN || len > AGENT_FRAME_MAX)
		return -EINVAL;
	ret = read_all(fd, buf, len, deadline);
	if (ret)
		return ret;
	return agent_parse(buf, len, m);
}

int agent_send(int fd, const uint8_t *frame, size_t len, int timeout_ms)
{
	return send_until(fd, frame, len, now_ms() + timeout_ms);
}

int agent_recv(int fd, uint8_t *buf, struct agent_msg *m, int timeout_ms)
{
	return recv_until(fd, buf, m, now_ms() + timeout_ms);
}

/* A Unix socket connect() blocks while the listener's backlog is full;
 * non-blocking it fails with EAGAIN instead, so retry until the deadline. */
static int connect_until(int fd, const struct sockaddr_un *sa, long long deadline)
{
	struct timespec pause = { 0, 10 * 1000 * 1000 };

	for (;;) {
		if (!connect(fd, (const struct sockaddr *)sa, sizeof(*sa)))
			return 0;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		nanosleep(&pause, NULL);
	}
}

/* Another user's agent must not get our passphrases, nor hand us its own:
 * under "sudo -E" root's client would follow the user's $XDG_RUNTIME_DIR
 * to whatever listens there. Root's agent may serve every user. */
static int check_agent(int fd, struct agent_msg *reply)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return -errno;
	reply->uid = cred.uid;
	return cred.uid == geteuid() || cred.uid == 0 ? 0 : -EPERM;
}

int agent_call(const char *path, uint8_t code, const struct agent_field *f, size_t n,
	       uint8_t *buf, struct agent_msg *reply, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint8_t *frame = NULL;
	int fd = -1, ret, len;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/* the request may carry a secret (ADD): guarded memory, wiped on free */
	ret = -ENOMEM;
	if (sodium_init() < 0)
		goto out;
	frame = sodium_malloc(AGENT_FRAME_MAX + HDR_LEN);
	if (!frame)
		goto out;
	len = agent_encode(frame, code, f, n);
	if (len < 0) {
		ret = len;
		goto out;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	ret = connect_until(fd, &sa, deadline);
	if (!ret)
		ret = check_agent(fd, reply);
	if (!ret)
		ret = send_until(fd, frame, (size_t)len, deadline);
	if (!ret)
		ret = recv_until(fd, buf, reply, deadline);
out:
	if (fd >= 0)
		close(fd);
	sodium_free(frame);
	return ret;
}

const char *agent_default_path(char *buf, size_t size)
{
	const char *dir = getenv("XDG_RUNTIME_DIR");
	int n;

	/* a relative runtime dir would name a socket relative to the cwd */
	if (dir && dir[0] == '/')
		n = snprintf(buf, size, "%s/keyfs/agent.sock", dir);
	else
		n = snprintf(buf, size, "/run/keyfs/agent.sock");
	if (n < 0 || (size_t)n >= size)
		return NULL;
	return buf;
}
