/* No core dumps and no ptrace attach, checked rather than assumed: a
 * silently ignored setting would leave passwords readable through
 * /proc/PID/mem or a core file, so the caller must learn of it and refuse
 * to run. */
#include <errno.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "keyfs/harden.h"

int harden_process(void)
{
	struct rlimit none = { 0, 0 }, got;
	int dumpable;

	/* The hard limit too: without CAP_SYS_RESOURCE nothing later in
	 * the process can raise the soft one again. */
	if (setrlimit(RLIMIT_CORE, &none))
		return -errno;
	/* Not dumpable: no core either, and only CAP_SYS_PTRACE may attach
	 * or open /proc/PID/mem. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
		return -errno;
	if (getrlimit(RLIMIT_CORE, &got))
		return -errno;
	dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	if (dumpable < 0)
		return -errno;
	if (got.rlim_cur != 0 || got.rlim_max != 0 || dumpable != 0)
		return -EPERM;
	return 0;
}
