/* A keyset in memory: a name and a tree of members (regular files,
 * directories and symbolic links) with their owners, modes, times and
 * extended attributes. Member data is key material and lives in
 * guarded memory (secmem.h). */
#ifndef KEYFS_KEYSET_H
#define KEYFS_KEYSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define KEYSET_NAME_MAX 64
/* One path component of a member, and a whole member path. */
#define KEYSET_MEMBER_NAME_MAX 64
#define KEYSET_PATH_MAX 255
/* Directories below the keyset's own: a/b/.../file. */
#define KEYSET_DEPTH_MAX 16
#define KEYSET_MEMBERS_MAX 1024
#define KEYSET_LINK_MAX 255
/* Symlinks one resolution may follow, the kernel's MAXSYMLINKS. */
#define KEYSET_LINK_FOLLOW_MAX 40
#define KEYSET_OWNER_MAX 32
/* Extended attributes kept per member, and the size of one value
 * (the kernel's own limit, XATTR_SIZE_MAX). */
#define KEYSET_XATTRS_MAX 32
#define KEYSET_XATTR_NAME_MAX 255
#define KEYSET_XATTR_SIZE_MAX 65536
#define KEYSET_HINT_MAX 256
/* Bounds of one keyset on disk, so that a writer of a keyset directory
 * cannot make sealing or a stat exhaust the daemon. A file may be as
 * big as a LUKS2 header backup (16 MiB) and then some. */
#define KEYSET_FILE_MAX (20 << 20)
#define KEYSET_TOTAL_MAX (64 << 20)
#define KEYSET_ENTRIES_MAX 4096
#define KEYSET_INI "KEYSET.ini"
/* Its signature (bundle.h): reserved beside it. */
#define KEYSET_SIG "KEYSET.sig"
/* 1: flat keysets, owner always written as 0:0 and meaningless; still
 * written for a keyset that format 1 can hold (regular files owned by
 * 0:0, no xattrs), so its tar stays byte-identical.
 * 2: members as they are, owners recorded. */
#define KEYSET_FORMAT 2
/* The permission bits a keyset member can have: what the keystore applies
 * when it writes a key (owner's, never group or other write, no setuid,
 * setgid or sticky bit). Kept in memory, compared and fingerprinted as
 * applied, so that a restored keyset equals its backup and re-importing
 * the same backup changes nothing. Symbolic links are always 0777. */
#define KEYSET_MODE_MASK 0755

enum keyset_type {
	KEYSET_FILE,
	KEYSET_DIR,
	KEYSET_LINK,
};

struct keyset_xattr {
	char *name;		/* "user.x" or "security.x" */
	uint8_t *value;		/* malloc()ed, NULL when len == 0 */
	size_t len;
};

/* What a member is, besides its path and bytes. */
struct keyset_meta {
	enum keyset_type type;
	mode_t mode;
	time_t mtime;
	bool owned;		/* uid, gid and names recorded (else: the keystore's) */
	uid_t uid;
	gid_t gid;
	const char *user;	/* names, informative only; NULL or "" if unknown */
	const char *group;
	const char *link;	/* KEYSET_LINK: the target, kept as is */
};

struct keyset_member {
	char name[KEYSET_PATH_MAX + 1];	/* relative path "a/b/c" */
	enum keyset_type type;
	mode_t mode;	/* permission bits, within KEYSET_MODE_MASK; 0777 for links */
	time_t mtime;
	/* Numeric owner, what a restore sets; the names go into tar headers
	 * for other machines' tar. An archive that did not record owners
	 * (format 1) has owned false: the keystore's owner applies. */
	bool owned;
	uid_t uid;
	gid_t gid;
	char user[KEYSET_OWNER_MAX + 1];
	char group[KEYSET_OWNER_MAX + 1];
	char *link;	/* KEYSET_LINK: malloc()ed target, else NULL */
	struct keyset_xattr *xattr;	/* sorted by name */
	size_t nxattr;
	uint8_t *data;	/* KEYSET_FILE: secmem_alloc()ed; NULL when len == 0 */
	size_t len;
};

struct keyset {
	char name[KEYSET_NAME_MAX + 1];
	char hint[KEYSET_HINT_MAX + 1]; /* "" if none */
	struct keyset_member *m;	/* sorted by name (strcmp) */
	size_t n;
	/* The keyset's own directory (a live keyset's path): its mode,
	 * owner and owner names, so that a restore onto a host without it
	 * makes it as it was. owned false when not recorded (a keystore
	 * keyset, an older archive): 0700 and the keystore's owner. No
	 * name, data, link, xattrs or time. */
	struct keyset_member top;
};

/* Keyset names: up to 64 bytes of [A-Za-z0-9._-] and escapes, "%" and
 * two upper-case hex digits, of every other byte and of a leading '.'
 * ("odd name" is "odd%20name", "\xc3\xa9" is "%C3%A9"). Only the canonical
 * escaping is valid, so a name has one spelling; code above the
 * keystore sees only such names, safe in paths, tar headers and logs. */
bool keyset_name_valid(const char *name);
/* raw (a directory name: any bytes but '/' and NUL) escaped into out:
 * -ENAMETOOLONG past KEYSET_NAME_MAX, -EINVAL for "". */
int keyset_name_escape(const char *raw, char out[static KEYSET_NAME_MAX + 1]);
/* A valid name back to its bytes (out of size bytes); -EINVAL for an
 * invalid name, -ENAMETOOLONG if out is too small. */
int keyset_name_unescape(const char *name, char *out, size_t size);
/* Member paths: components of the same alphabet and length joined by
 * '/', at most KEYSET_DEPTH_MAX directories deep and KEYSET_PATH_MAX
 * long; KEYSET.ini at the top is reserved. */
bool keyset_member_name_valid(const char *name);
/* Does a symlink at member path name with this target stay inside the
 * keyset? Resolved lexically against the member's directory: relative,
 * never above the keyset's top, no empty target. Alone, as a member is
 * added; keyset_link_inside() resolves it against the whole tree. */
bool keyset_link_valid(const char *name, const char *target);
/* Resolves link member m of ks (sorted) against ks's own members, the
 * way the kernel will once the keyset is installed: from m's directory,
 * a component that is a link member of ks is replaced by its target
 * (from that link's directory), ".." pops a component, "." and empty
 * components are skipped. -EINVAL, with the member named in why
 * (optional, size bytes), if the walk climbs above the keyset's top at
 * any point, follows more than KEYSET_LINK_FOLLOW_MAX links (m itself
 * counted, as for open() of it; loops included) or reaches a path over
 * PATH_MAX. A name ks does not hold is taken as it reads: a target
 * dangling inside the keyset is accepted (".." after such a name pops
 * it), since by the tree it leads nowhere outside. */
int keyset_link_inside(const struct keyset *ks, const struct keyset_member *m, char *why,
		       size_t size);
/* Does the extended attribute name belong to what keysets keep (user.*,
 * the POSIX ACLs system.posix_acl_access and _default, security.*), in
 * printable ASCII (what a tar carries unchanged)? */
bool keyset_xattr_kept(const char *name);

/* Append a regular file with no owner recorded (the keystore's applies;
 * copies data into guarded memory; mode & KEYSET_MODE_MASK kept). Keeps no order; call keyset_sort() when done.
 * -EEXIST on a duplicate name, -EINVAL on an invalid one, -E2BIG past
 * KEYSET_MEMBERS_MAX. */
int keyset_add(struct keyset *ks, const char *name, mode_t mode, time_t mtime,
	       const uint8_t *data, size_t len);
/* The same for any member; *out (optional) points at the new member
 * until the next add. -EINVAL also for data on a non-file, a link
 * target leaving the keyset, or an owner name that is too long. */
int keyset_add_member(struct keyset *ks, const char *name, const struct keyset_meta *meta,
		      const uint8_t *data, size_t len, struct keyset_member **out);
/* Adds an extended attribute to m (kept sorted). -EINVAL for a name
 * outside the kept namespaces or a value over KEYSET_XATTR_SIZE_MAX,
 * -EEXIST for a duplicate, -E2BIG past KEYSET_XATTRS_MAX. */
int keyset_add_xattr(struct keyset_member *m, const char *name, const void *value, size_t len);
void keyset_sort(struct keyset *ks);
/* Checks what sorting cannot: every member's directory is a directory
 * member of the keyset (no file or link on the way to another member),
 * and every link stays inside the keyset resolved against the tree
 * (keyset_link_inside()). 0 or -EINVAL; why (optional, size bytes)
 * then names the first member refused and the reason, in words. */
int keyset_check_tree_why(const struct keyset *ks, char *why, size_t size);
/* The same without the reason. */
int keyset_check_tree(const struct keyset *ks);
/* The member named name, or NULL (ks sorted). */
const struct keyset_member *keyset_find(const struct keyset *ks, const char *name);
/* Drops the directories holding no file or link (order kept): a live
 * keyset's walk enters directories that may hold members, and only those
 * holding one are needed in the backup. */
void keyset_prune_dirs(struct keyset *ks);
/* Is ks->top recorded as other than what an unrecorded top is (0700,
 * 0:0)? Only then is it in the tar's top entry and the fingerprint,
 * so keysets without it keep their bytes. */
bool keyset_top_recorded(const struct keyset *ks);
/* Newest member mtime (0 for an empty keyset): the version's time. */
time_t keyset_mtime(const struct keyset *ks);
/* True if both hold the same member names, types, modes (&
 * KEYSET_MODE_MASK), link targets, extended attributes, owners (uid and
 * gid, where both recorded one) and contents, and the same top mode and
 * owner where both recorded one. The keyset names, mtimes,
 * owner names and hints are not compared. Both must be sorted. */
bool keyset_equal(const struct keyset *a, const struct keyset *b);
/* dst (cleared first) becomes a deep copy of src, members sorted; left
 * empty on error. */
int keyset_copy(struct keyset *dst, const struct keyset *src);
/* Wipes and frees members; leaves *ks empty and reusable. */
void keyset_clear(struct keyset *ks);

#endif
