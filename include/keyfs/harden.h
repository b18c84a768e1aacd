/* Process hardening for the programs that hold secrets (keyfs,
 * keyfs-agent): their memory holds passwords and keys, so it must never
 * reach a core file or another process through ptrace. */
#ifndef KEYFS_HARDEN_H
#define KEYFS_HARDEN_H

/* Sets RLIMIT_CORE to 0 (soft and hard) and PR_SET_DUMPABLE to 0, then
 * reads both back. 0, or -errno of the call that failed, or -EPERM if a
 * setting did not take. Call it first thing in main(), before any secret
 * exists, and do not start if it fails. The dumpable flag survives fork()
 * but not an execve() of a set-user-ID program. */
int harden_process(void);

#endif
