/* keyfsctl's reading of keyfs-agent's answers. */
#ifndef KEYFS_AGENT_REPLY_H
#define KEYFS_AGENT_REPLY_H

#include "keyfs/agent_proto.h"

/* The agent's answer m to request what over sock, where ret is
 * agent_call()'s: 0, or the error after saying on stderr what it was
 * (-EACCES for a refusal). */
int agent_reply(const char *sock, const char *what, int ret, const struct agent_msg *m);

#endif
