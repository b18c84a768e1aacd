/* keyfsctl's reading of keyfs-agent's answers (agent_reply.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent_reply.h"

int agent_reply(const char *sock, const char *what, int ret, const struct agent_msg *m)
{
	if (ret == -EPERM) {
		/* sudo -E keeps the user's $XDG_RUNTIME_DIR: say whose agent
		 * that is, and that it got nothing */
		fprintf(stderr,
			"keyfsctl: agent %s runs as uid %u, not as uid %u or root: refused, nothing sent\n"
			"keyfsctl: name the right socket with -a SOCKET\n",
			sock, (unsigned)m->uid, (unsigned)geteuid());
		return ret;
	}
	if (ret) {
		fprintf(stderr, "keyfsctl: agent: %s\n", strerror(-ret));
		return ret;
	}
	if (m->code == AGENT_OK)
		return 0;
	fprintf(stderr, "keyfsctl: agent refused %s: %.*s\n", what,
		m->nfields ? (int)m->f[0].len : 0, m->nfields ? (const char *)m->f[0].p : "");
	return -EACCES;
}
