/* Glob patterns over member paths (glob.h). */
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "keyfs/glob.h"
#include "keyfs/keyset.h"

/* Length of the component at s (up to '/' or the end). */
static size_t comp_len(const char *s)
{
	const char *slash = strchr(s, '/');

	return slash ? (size_t)(slash - s) : strlen(s);
}

static const char *next_comp(const char *s)
{
	const char *slash = strchr(s, '/');

	return slash ? slash + 1 : NULL;
}

static bool comp_match(const char *pat, size_t plen, const char *name, size_t nlen)
{
	char p[KEYSET_PATH_MAX + 1], n[KEYSET_PATH_MAX + 1];

	if (plen > KEYSET_PATH_MAX || nlen > KEYSET_PATH_MAX)
		return false;
	snprintf(p, sizeof(p), "%.*s", (int)plen, pat);
	snprintf(n, sizeof(n), "%.*s", (int)nlen, name);
	return fnmatch(p, n, FNM_PERIOD) == 0;
}

/* pat and path point at a component each, or are NULL past the end.
 * Depth is bounded by KEYSET_DEPTH_MAX components of path. */
static bool match_from(const char *pat, const char *path, bool prefix)
{
	size_t plen;

	if (!path)
		/* path used up: a full match needs the pattern used up too (or
		 * only "**" left); a prefix match is enough for a directory */
		return prefix || !pat || (comp_len(pat) == 2 && !strncmp(pat, "**", 2) &&
					  match_from(next_comp(pat), NULL, false));
	if (!pat)
		return false;
	plen = comp_len(pat);
	if (plen == 2 && !strncmp(pat, "**", 2))
		return match_from(next_comp(pat), path, prefix) ||
		       match_from(pat, next_comp(path), prefix);
	return comp_match(pat, plen, path, comp_len(path)) &&
	       match_from(next_comp(pat), next_comp(path), prefix);
}

bool glob_match(const char *pattern, const char *path, bool prefix)
{
	return *pattern && *path && match_from(pattern, path, prefix);
}

bool glob_list_match(const char *list, const char *path, bool prefix)
{
	char pat[KEYSET_PATH_MAX + 1];
	const char *p = list;
	size_t n;

	while (*p) {
		p += strspn(p, " \t");
		n = strcspn(p, " \t");
		if (n && n <= KEYSET_PATH_MAX) {
			snprintf(pat, sizeof(pat), "%.*s", (int)n, p);
			if (glob_match(pat, path, prefix))
				return true;
		}
		p += n;
	}
	return false;
}
