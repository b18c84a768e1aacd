/* Installing a keyset in place over the files it replaces (a live
 * keyset's directory): every file and link written under a temporary
 * name in its target directory with owner, mode, xattrs and time, and
 * fsynced, all of them before the first rename; then renamed into place
 * one after the other, never hard-linked; then the directories given
 * their modes and fsynced. Directories that are missing are made with
 * the archived owner and mode. */
#ifndef KEYFS_INSTALL_H
#define KEYFS_INSTALL_H

#include "keyfs/keyset.h"
#include "keyfs/keytree.h"

/* Installs ks into the tree at dfd. old (optional, sorted) is what is
 * there now: its files and links that ks lacks are removed once ks is
 * in, and if a rename fails the files already renamed are put back from
 * it (or removed, if old had none) and every temporary is removed.
 * -EPERM before anything is written for owners this process cannot
 * give; -ENOTDIR / -EISDIR when a file stands where ks has a directory
 * or the other way round; -EACCES (why says where) when dfd, a directory
 * above it or one on the way to a member can be changed by a user other
 * than root and that member's owner; -ESTALE (why) when a directory was
 * swapped during the install (keytree.h: pins). where is dfd's path, for
 * messages. */
int install_keyset(int dfd, const char *where, const struct keyset *ks, const struct keyset *old,
		   char *why, size_t size);

/* Removes the temporaries a crash left in the directories of the tree
 * at dfd that sel may enter. */
void install_clean(int dfd, const struct keytree_select *sel);

#endif
