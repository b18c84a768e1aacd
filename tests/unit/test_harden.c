/* Unit test for harden.c: after harden_process() this process writes no
 * core and is not dumpable, and a second call (both mains may run code
 * that calls it again) still succeeds. */
#include <sys/prctl.h>
#include <sys/resource.h>

#include "keyfs/harden.h"

#include "tap.h"

int main(void)
{
	struct rlimit rl;

	TAP_EQ_INT(harden_process(), 0, "harden_process()");
	tap_ok(!getrlimit(RLIMIT_CORE, &rl) && rl.rlim_cur == 0 && rl.rlim_max == 0,
	       "RLIMIT_CORE is 0, soft and hard");
	TAP_EQ_INT(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0, "not dumpable");
	TAP_EQ_INT(harden_process(), 0, "a second call succeeds too");
	return tap_done();
}
