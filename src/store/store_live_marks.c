/* The marks of versions restored from backups nothing vouched for
 * (store_live.h, versions.h): kept in keyfs' state directory beside the
 * versions, for live and keystore keysets alike. */
#include <errno.h>
#include <stdbool.h>

#include "keyfs/store_live.h"

#include "store_live_priv.h"
#include "versions.h"

bool store_live_unauthenticated(const struct store *s, const char *name, unsigned version,
				char *fpr, size_t size)
{
	struct live_store *ls = store_live_of(s);

	*fpr = '\0';
	return ls && versions_marked(ls->sfd, name, version, fpr, size);
}

void store_live_unmark(const struct store *s, const char *name, unsigned version)
{
	struct live_store *ls = store_live_of(s);

	if (ls)
		versions_unmark(ls->sfd, name, version);
}
