/* Unit tests of the agent protocol: encode/parse round trips, every way a
 * body can be malformed, names, and frame I/O over real sockets (partial
 * reads, deadlines, a peer that hangs up), and a client refusing an agent
 * that runs as another user. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keyfs/agent_proto.h"

#include "tap.h"

#define FRAME_BUF (AGENT_FRAME_MAX + 4)

static uint8_t frame[FRAME_BUF];
static uint8_t body[AGENT_FRAME_MAX + 16];

static struct agent_field fld(const char *s)
{
	return (struct agent_field){ (const uint8_t *)s, strlen(s) };
}

static bool field_eq(const struct agent_field *f, const void *p, size_t len)
{
	return f->len == len && !memcmp(f->p, p, len);
}

static void test_round_trip(void)
{
	static uint8_t big[AGENT_FIELD_MAX];
	struct agent_field f[AGENT_FIELDS_MAX];
	struct agent_msg m;
	size_t i;
	int n;

	f[0] = fld("backup");
	f[1] = fld("Correct-Horse-7");
	n = agent_encode(frame, AGENT_ADD, f, 2);
	TAP_EQ_INT(n, 4 + 2 + 2 + 6 + 2 + 15, "encode: add frame size");
	tap_ok(!memcmp(frame, "\0\0\0\x1b\x01\x01\0\x06" "backup", 14), "encode: exact bytes");
	TAP_EQ_INT(agent_parse(frame + 4, n - 4, &m), 0, "parse: add");
	TAP_EQ_INT(m.code, AGENT_ADD, "parse: code");
	TAP_EQ_INT(m.nfields, 2, "parse: two fields");
	tap_ok(field_eq(&m.f[0], "backup", 6) && field_eq(&m.f[1], "Correct-Horse-7", 15),
	       "parse: fields point at the values");

	n = agent_encode(frame, AGENT_LIST, NULL, 0);
	TAP_EQ_INT(n, 6, "encode: no fields");
	TAP_EQ_INT(agent_parse(frame + 4, n - 4, &m), 0, "parse: no fields");
	tap_ok(m.code == AGENT_LIST && m.nfields == 0, "parse: list, empty");

	for (i = 0; i < AGENT_FIELDS_MAX; i++)
		f[i] = fld(i % 2 ? "" : "x");
	n = agent_encode(frame, AGENT_OK, f, AGENT_FIELDS_MAX);
	TAP_EQ_INT(agent_parse(frame + 4, n - 4, &m), 0, "parse: %d fields, some empty",
		   AGENT_FIELDS_MAX);
	tap_ok(m.nfields == AGENT_FIELDS_MAX && m.f[1].len == 0 && field_eq(&m.f[30], "x", 1),
	       "parse: every field back");

	/* the largest body: three full fields and one that fills the rest */
	memset(big, 'k', sizeof(big));
	for (i = 0; i < 3; i++)
		f[i] = (struct agent_field){ big, AGENT_FIELD_MAX };
	f[3] = (struct agent_field){ big, AGENT_FRAME_MAX - 2 - 3 * (2 + AGENT_FIELD_MAX) - 2 };
	n = agent_encode(frame, AGENT_OK, f, 4);
	TAP_EQ_INT(n, 4 + AGENT_FRAME_MAX, "encode: a body of exactly %d bytes", AGENT_FRAME_MAX);
	TAP_EQ_INT(agent_parse(frame + 4, n - 4, &m), 0, "parse: the largest body");
	tap_ok(m.nfields == 4 && m.f[0].len == AGENT_FIELD_MAX, "parse: full fields back");
}

static void test_encode_limits(void)
{
	static uint8_t big[AGENT_FIELD_MAX + 1];
	struct agent_field f[AGENT_FIELDS_MAX + 1];
	size_t i;

	memset(big, 'k', sizeof(big));
	for (i = 0; i <= AGENT_FIELDS_MAX; i++)
		f[i] = fld("a");
	TAP_EQ_INT(agent_encode(frame, AGENT_OK, f, AGENT_FIELDS_MAX + 1), -EMSGSIZE,
		   "encode: too many fields");
	f[0] = (struct agent_field){ big, AGENT_FIELD_MAX + 1 };
	TAP_EQ_INT(agent_encode(frame, AGENT_OK, f, 1), -EMSGSIZE, "encode: field too long");
	for (i = 0; i < 4; i++)
		f[i] = (struct agent_field){ big, AGENT_FIELD_MAX };
	TAP_EQ_INT(agent_encode(frame, AGENT_OK, f, 4), -EMSGSIZE, "encode: body too long");
	f[0] = (struct agent_field){ (const uint8_t *)"a\0b", 3 };
	TAP_EQ_INT(agent_encode(frame, AGENT_OK, f, 1), -EINVAL, "encode: NUL in a field");
}

static void expect_invalid(size_t len, const char *what)
{
	struct agent_msg m;

	TAP_EQ_INT(agent_parse(body, len, &m), -EINVAL, "parse refuses: %s", what);
}

static void test_malformed(void)
{
	size_t i, last, flen;

	body[0] = AGENT_PROTO_VERSION;
	body[1] = AGENT_LIST;
	expect_invalid(0, "empty body");
	expect_invalid(1, "version without code");
	body[0] = 0;
	expect_invalid(2, "version 0");
	body[0] = AGENT_PROTO_VERSION + 1;
	expect_invalid(2, "a later version");
	body[0] = AGENT_PROTO_VERSION;

	body[2] = 0;
	expect_invalid(3, "half a field length");
	body[3] = 5;
	memcpy(body + 4, "abcd", 4);
	expect_invalid(8, "field length past the end");
	expect_invalid(4, "field length, no bytes");
	body[8] = 'e';
	body[9] = 0;
	expect_invalid(10, "trailing byte after the last field");
	body[2] = 0;
	body[3] = 3;
	memcpy(body + 4, "a\0b", 3);
	expect_invalid(7, "NUL in a field");

	body[2] = (AGENT_FIELD_MAX + 1) >> 8;
	body[3] = (AGENT_FIELD_MAX + 1) & 0xff;
	memset(body + 4, 'x', AGENT_FIELD_MAX + 1);
	expect_invalid(4 + AGENT_FIELD_MAX + 1, "field longer than the maximum");

	memset(body + 2, 0, 2 * (AGENT_FIELDS_MAX + 1));
	TAP_EQ_INT(agent_parse(body, 2 + 2 * AGENT_FIELDS_MAX, &(struct agent_msg){ 0 }), 0,
		   "parse: %d empty fields", AGENT_FIELDS_MAX);
	expect_invalid(2 + 2 * (AGENT_FIELDS_MAX + 1), "too many fields");

	/* well formed but for its size: three full fields and one more */
	memset(body + 2, 'x', sizeof(body) - 2);
	for (i = 0; i < 3; i++) {
		body[2 + i * (2 + AGENT_FIELD_MAX)] = AGENT_FIELD_MAX >> 8;
		body[3 + i * (2 + AGENT_FIELD_MAX)] = AGENT_FIELD_MAX & 0xff;
	}
	last = 2 + 3 * (2 + AGENT_FIELD_MAX);
	flen = AGENT_FRAME_MAX + 1 - last - 2;
	body[last] = flen >> 8;
	body[last + 1] = flen & 0xff;
	expect_invalid(AGENT_FRAME_MAX + 1, "body one byte over the frame maximum");
	expect_invalid(AGENT_FRAME_MAX, "the same body cut at the maximum");
}

static void test_names(void)
{
	char n81[AGENT_NAME_MAX + 2];

	memset(n81, 'a', sizeof(n81));
	tap_ok(agent_name_valid((const uint8_t *)"backup", 6), "name: backup");
	tap_ok(agent_name_valid((const uint8_t *)"backup:ks-1.a_B9", 16), "name: every class");
	tap_ok(agent_name_valid((const uint8_t *)n81, AGENT_NAME_MAX), "name: %d bytes",
	       AGENT_NAME_MAX);
	tap_ok(!agent_name_valid((const uint8_t *)n81, AGENT_NAME_MAX + 1), "name: %d bytes refused",
	       AGENT_NAME_MAX + 1);
	tap_ok(!agent_name_valid((const uint8_t *)"", 0), "name: empty refused");
	tap_ok(!agent_name_valid((const uint8_t *)"a b", 3), "name: space refused");
	tap_ok(!agent_name_valid((const uint8_t *)"a/b", 3), "name: slash refused");
	tap_ok(!agent_name_valid((const uint8_t *)"a\nb", 3), "name: newline refused");
	tap_ok(!agent_name_valid((const uint8_t *)"a\0b", 3), "name: NUL refused");
	tap_ok(!agent_name_valid((const uint8_t *)"caf\xc3\xa9", 5), "name: non-ASCII refused");
	tap_ok(!agent_name_valid((const uint8_t *)"%s", 2), "name: percent refused");
}

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes data to fd one byte at a time from a child, then closes: the
 * reader sees every partial-read case. */
static pid_t trickle(int fd, const uint8_t *p, size_t len)
{
	struct timespec pause = { 0, 200 * 1000 };
	pid_t pid = fork();
	size_t i;

	if (pid)
		return pid;
	for (i = 0; i < len; i++) {
		if (write(fd, p + i, 1) != 1)
			_exit(1);
		nanosleep(&pause, NULL);
	}
	_exit(0);
}

static void recv_bad(const char *bytes, size_t len, const char *what)
{
	static uint8_t buf[AGENT_FRAME_MAX];
	struct agent_msg m;
	int sv[2];

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	if (write(sv[0], bytes, len) != (ssize_t)len)
		tap_ok(false, "write: %m");
	TAP_EQ_INT(agent_recv(sv[1], buf, &m, 1000), -EINVAL, "recv: %s", what);
	close(sv[0]);
	close(sv[1]);
}

static void test_io(void)
{
	static uint8_t buf[AGENT_FRAME_MAX];
	struct agent_field f[2] = { fld("seal"), fld("") };
	struct agent_msg m;
	long long t0;
	int sv[2], n, st;
	pid_t pid;

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	n = agent_encode(frame, AGENT_GET, f, 2);
	TAP_EQ_INT(agent_send(sv[0], frame, n, 1000), 0, "send: a frame");
	TAP_EQ_INT(agent_recv(sv[1], buf, &m, 1000), 0, "recv: the frame");
	tap_ok(m.code == AGENT_GET && m.nfields == 2 && field_eq(&m.f[0], "seal", 4) &&
	       m.f[1].len == 0, "recv: same message");

	pid = trickle(sv[0], frame, n);
	TAP_EQ_INT(agent_recv(sv[1], buf, &m, 5000), 0, "recv: a frame one byte at a time");
	waitpid(pid, &st, 0);
	tap_ok(m.nfields == 2 && field_eq(&m.f[0], "seal", 4), "recv: partial reads reassembled");

	TAP_EQ_INT(agent_send(sv[0], frame, n - 1, 1000), -EINVAL, "send: length prefix mismatch");

	t0 = ms_now();
	TAP_EQ_INT(agent_recv(sv[1], buf, &m, 100), -ETIMEDOUT, "recv: silent peer times out");
	tap_ok(ms_now() - t0 >= 100 && ms_now() - t0 < 1000, "recv: after the deadline, promptly");

	close(sv[0]);
	close(sv[1]);

	/* after a refused frame the stream is out of step: one pair each */
	recv_bad("\0\0\x10\x01", 4, "frame over the maximum refused unread");
	recv_bad("\0\0\0\x01\x01", 5, "body too short refused");
	recv_bad("\0\0\0\x02\x02\x03", 6, "bad version refused");
	recv_bad("\0\0\0\x04\x01\x03\0\x09", 8, "field past the end refused");

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	TAP_EQ_INT(write(sv[0], frame, n - 3), n - 3, "write a truncated frame");
	close(sv[0]);
	TAP_EQ_INT(agent_recv(sv[1], buf, &m, 1000), -EPIPE, "recv: peer gone mid-frame");
	TAP_EQ_INT(agent_send(sv[1], frame, n, 1000), -EPIPE, "send: peer gone");
	close(sv[1]);
}

static int listener(const char *path, bool do_listen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || (do_listen && listen(fd, 4)))
		return -1;
	return fd;
}

/* A server that answers one request with OK and the request's fields. */
static pid_t echo_server(int lfd)
{
	static uint8_t buf[AGENT_FRAME_MAX];
	struct agent_msg m;
	pid_t pid = fork();
	int fd, n;

	if (pid)
		return pid;
	fd = accept(lfd, NULL, NULL);
	if (fd < 0 || agent_recv(fd, buf, &m, 5000))
		_exit(1);
	n = agent_encode(frame, AGENT_OK, m.f, m.nfields);
	_exit(n < 0 || agent_send(fd, frame, n, 5000));
}

static void test_call(void)
{
	static uint8_t buf[AGENT_FRAME_MAX];
	struct agent_field f[2] = { fld("backup"), fld("s3cret") };
	char dir[] = "/tmp/test_agent_proto.XXXXXX", path[128];
	struct agent_msg m;
	int lfd, st;
	long long t0;
	pid_t pid;

	if (!mkdtemp(dir)) {
		tap_ok(false, "mkdtemp: %m");
		return;
	}
	snprintf(path, sizeof(path), "%s/agent.sock", dir);
	TAP_EQ_INT(agent_call(path, AGENT_LIST, NULL, 0, buf, &m, 1000), -ENOENT,
		   "call: no socket, ENOENT");

	lfd = listener(path, false);
	TAP_EQ_INT(agent_call(path, AGENT_LIST, NULL, 0, buf, &m, 1000), -ECONNREFUSED,
		   "call: nobody listening, ECONNREFUSED");
	close(lfd);

	lfd = listener(path, true);
	t0 = ms_now();
	TAP_EQ_INT(agent_call(path, AGENT_LIST, NULL, 0, buf, &m, 200), -ETIMEDOUT,
		   "call: a listener that never answers times out");
	tap_ok(ms_now() - t0 < 1000, "call: within its deadline");

	close(lfd);	/* its backlog holds the abandoned connection */

	lfd = listener(path, true);
	pid = echo_server(lfd);
	TAP_EQ_INT(agent_call(path, AGENT_ADD, f, 2, buf, &m, 5000), 0, "call: round trip");
	tap_ok(m.code == AGENT_OK && m.nfields == 2 && field_eq(&m.f[1], "s3cret", 6),
	       "call: reply fields in the caller's buffer");
	waitpid(pid, &st, 0);
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "call: the server saw a valid frame");
	close(lfd);
	unlink(path);
	rmdir(dir);

	memset(path, 'p', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	TAP_EQ_INT(agent_call(path, AGENT_LIST, NULL, 0, buf, &m, 100), -ENAMETOOLONG,
		   "call: path longer than sun_path");
}

#define NOBODY 65534

/* A server that runs as uid NOBODY from before listen(), which is what
 * SO_PEERCRED reports to its clients. Writes one byte to ready when it
 * listens; exits 0 if a request reached it, 1 if none did. */
static pid_t nobody_server(const char *path, int ready)
{
	static uint8_t buf[AGENT_FRAME_MAX];
	struct agent_msg m;
	pid_t pid = fork();
	int lfd, fd, n;

	if (pid)
		return pid;
	if (setgid(NOBODY) || setuid(NOBODY))
		_exit(2);
	lfd = listener(path, true);
	if (lfd < 0 || write(ready, "r", 1) != 1)
		_exit(3);
	fd = accept(lfd, NULL, NULL);
	if (fd < 0 || agent_recv(fd, buf, &m, 5000))
		_exit(1);
	n = agent_encode(frame, AGENT_OK, NULL, 0);
	_exit(n < 0 || agent_send(fd, frame, n, 5000) ? 4 : 0);
}

/* Under sudo -E root's keyfsctl follows the user's $XDG_RUNTIME_DIR: the
 * agent listening there must run as the caller or root, else nothing is
 * sent to it. */
static void test_call_other_uid(void)
{
	static uint8_t buf[AGENT_FRAME_MAX];
	struct agent_field f[2] = { fld("backup"), fld("s3cret") };
	char dir[] = "/tmp/test_agent_proto.XXXXXX", path[128], c;
	struct agent_msg m = { 0 };
	int ready[2], st, ret;
	pid_t pid;

	if (geteuid() != 0) {
		tap_ok(true, "# SKIP call to another uid's agent: needs root");
		return;
	}
	if (!mkdtemp(dir) || chown(dir, NOBODY, NOBODY) || pipe(ready)) {
		tap_ok(false, "setup: %m");
		return;
	}
	snprintf(path, sizeof(path), "%s/agent.sock", dir);
	pid = nobody_server(path, ready[1]);
	close(ready[1]);
	if (read(ready[0], &c, 1) != 1) {
		tap_ok(false, "the uid %d server did not start", NOBODY);
		goto out;
	}
	ret = agent_call(path, AGENT_ADD, f, 2, buf, &m, 2000);
	TAP_EQ_INT(ret, -EPERM, "call: an agent of uid %d is refused", NOBODY);
	TAP_EQ_INT(m.uid, NOBODY, "call: the refusal names the agent's uid");
out:
	waitpid(pid, &st, 0);
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 1, "call: nothing reached the other uid's agent (%d)",
	       WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	close(ready[0]);
	unlink(path);
	rmdir(dir);
}

static void test_default_path(void)
{
	char buf[256];

	setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
	tap_ok(agent_default_path(buf, sizeof(buf)) &&
	       !strcmp(buf, "/run/user/1000/keyfs/agent.sock"), "default path: XDG_RUNTIME_DIR");
	unsetenv("XDG_RUNTIME_DIR");
	tap_ok(agent_default_path(buf, sizeof(buf)) && !strcmp(buf, "/run/keyfs/agent.sock"),
	       "default path: /run/keyfs");
	setenv("XDG_RUNTIME_DIR", "relative", 1);
	tap_ok(agent_default_path(buf, sizeof(buf)) && !strcmp(buf, "/run/keyfs/agent.sock"),
	       "default path: a relative runtime dir is ignored");
	tap_ok(agent_default_path(buf, 10) == NULL, "default path: NULL when it does not fit");
}

int main(void)
{
	test_round_trip();
	test_encode_limits();
	test_malformed();
	test_names();
	test_io();
	test_call();
	test_call_other_uid();
	test_default_path();
	return tap_done();
}
