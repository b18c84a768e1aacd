/* The keyfs-agent protocol, version 1.
 *
 * A Unix stream socket (mode 0600 in a 0700 directory). The agent serves
 * only peers whose uid (SO_PEERCRED) is its own or root. Each request and
 * each reply is one frame:
 *
 *   frame   = length:u32be body            (length = size of body, <= 4096)
 *   body    = version:u8 (=1) code:u8 field*
 *   field   = length:u16be bytes           (no NUL; length <= 1024)
 *
 * Requests (code, fields):
 *   AGENT_ADD    name secret       hold a passphrase under a name
 *   AGENT_REMOVE name              wipe and forget it
 *   AGENT_LIST   -                 reply: the names, never the values
 *   AGENT_GET    purpose keyset    purpose "seal", "own", "unseal" or
 *                                  "identities"; keyset may be "" (not for
 *                                  "own"; always for "identities")
 *
 * Replies: code AGENT_OK with fields, or an error code with one field, a
 * message in words. GET for "seal" answers the passphrase named
 * "backup:<keyset>" if held, else "backup"; for "own" the one named
 * "backup:<keyset>" alone (so a client can tell a keyset's own passphrase
 * from the backup one); for "unseal" every passphrase held, the "seal"
 * one first (as many as fit in one frame); for "identities" every
 * identity held (same limit).
 *
 * Identities: a name starting "identity:" (AGENT_IDENTITY_PREFIX) holds
 * the text of an age identity file, which the client checked; it is
 * never answered as a passphrase, and "identities" answers nothing else.
 * Names are
 * [A-Za-z0-9._:-]{1,80}; a keyset, when not "", must make a valid name
 * after "backup:". ADD of a held name replaces it; the secret is 1..1024
 * bytes. Nothing held for a GET or REMOVE is AGENT_ENOENT.
 *
 * One request per connection: the client connects, writes a frame, reads
 * the reply frame, closes. Clients check the agent as the agent checks
 * them: one that runs as neither the client's uid nor root is refused
 * before a byte is sent. */
#ifndef KEYFS_AGENT_PROTO_H
#define KEYFS_AGENT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define AGENT_PROTO_VERSION 1
#define AGENT_FRAME_MAX 4096
#define AGENT_FIELD_MAX 1024
#define AGENT_FIELDS_MAX 32
#define AGENT_NAME_MAX 80

enum agent_code {
	AGENT_ADD = 1,
	AGENT_REMOVE = 2,
	AGENT_LIST = 3,
	AGENT_GET = 4,
	AGENT_OK = 0x80,
	AGENT_ENOENT = 0x81,	/* no such name / nothing held */
	AGENT_EINVAL = 0x82,	/* malformed request */
	AGENT_EACCES = 0x83,	/* peer refused */
	AGENT_ENOSPC = 0x84,	/* agent full */
};

struct agent_field {
	const uint8_t *p;	/* points into the frame buffer */
	size_t len;
};

struct agent_msg {
	uid_t uid;		/* agent_call(): the agent's uid, once connected */
	uint8_t code;
	size_t nfields;
	struct agent_field f[AGENT_FIELDS_MAX];
};

/* Parses a body (without the length prefix); -EINVAL if malformed. */
int agent_parse(const uint8_t *body, size_t len, struct agent_msg *m);

/* Encodes length prefix + body into buf (AGENT_FRAME_MAX + 4 bytes);
 * returns the frame size, -EMSGSIZE (too many or too long fields), or
 * -EINVAL (a NUL in a field, which agent_parse() would refuse). */
int agent_encode(uint8_t *buf, uint8_t code, const struct agent_field *f, size_t n);

/* Names: [A-Za-z0-9._:-]{1,80}. */
bool agent_name_valid(const uint8_t *p, size_t len);

#define AGENT_IDENTITY_PREFIX "identity:"
/* True for a name that holds an identity file, not a passphrase. */
bool agent_name_is_identity(const uint8_t *p, size_t len);

/* Frame I/O on a connected socket, blocking or not, with a deadline in
 * milliseconds for the whole frame; 0 or -ETIMEDOUT, -EPIPE (the peer
 * closed or reset), -EINVAL (malformed, or a length prefix over
 * AGENT_FRAME_MAX, refused before reading the body), other -errno.
 * agent_recv() reads into buf (AGENT_FRAME_MAX bytes) and parses it into
 * m. After -EINVAL the stream is out of step: close it. Never SIGPIPE. */
int agent_send(int fd, const uint8_t *frame, size_t len, int timeout_ms);
int agent_recv(int fd, uint8_t *buf, struct agent_msg *m, int timeout_ms);

/* Client side: one request, one reply, connect included within
 * timeout_ms. The reply's fields point into buf, which the caller provides
 * (AGENT_FRAME_MAX bytes; sodium_malloc it when the reply carries
 * secrets). Returns 0 with reply->code OK or an agent error code, or
 * -ENOENT / -ECONNREFUSED when no agent listens, -EPERM when the process
 * listening on path (SO_PEERCRED) runs as neither the caller's effective
 * uid nor root (reply->uid says which uid; nothing was sent), -ETIMEDOUT,
 * -EINVAL, -ENAMETOOLONG, other -errno. */
int agent_call(const char *path, uint8_t code, const struct agent_field *f, size_t n,
	       uint8_t *buf, struct agent_msg *reply, int timeout_ms);

/* The default socket: $XDG_RUNTIME_DIR/keyfs/agent.sock (if absolute),
 * else /run/keyfs/agent.sock. Returns buf, or NULL if size is too small. */
const char *agent_default_path(char *buf, size_t size);

#endif
