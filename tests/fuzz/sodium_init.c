/* The libFuzzer initializer of the targets that only need libsodium
 * ready (sodium_malloc aborts without sodium_init). */
#include <sodium.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (sodium_init() < 0)
		abort();
	return 0;
}
