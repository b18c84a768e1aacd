/* keyfs-agent's listening socket: a 0600 socket in a 0700 directory of
 * the agent's user, a stale socket of a dead agent removed, a live
 * agent's never taken over; removed at exit only if it is still ours. */
#ifndef KEYFS_AGENT_SOCKET_H
#define KEYFS_AGENT_SOCKET_H

#include <sys/types.h>

struct agent_socket {
	const char *path;
	int listen_fd;		/* set by agent_socket_open() */
	dev_t dev;		/* the socket file made, to remove no other */
	ino_t ino;
};

int agent_socket_open(struct agent_socket *a);
void agent_socket_remove(const struct agent_socket *a);

#endif
