/* placeholder */ typedef int keyfs_placeholder_t;
