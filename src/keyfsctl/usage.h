/* keyfsctl's usage text. */
#ifndef KEYFS_USAGE_H
#define KEYFS_USAGE_H

#include <stdio.h>

#define DEFAULT_MOUNT "/mnt/keys"

void usage(FILE *f);

#endif
