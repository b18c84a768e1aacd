/* keyfsctl list [--json]: every keyset, from MNT/.keysets. */
#ifndef KEYFS_LIST_H
#define KEYFS_LIST_H

/* argv[0] is "list"; returns the exit status (0, 1 error, 2 usage). */
int list_main(const char *mount, int argc, char **argv);

#endif
