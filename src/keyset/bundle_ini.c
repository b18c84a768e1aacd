/* KEYSET.ini as bundle_pack() writes it (bundle_priv.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "keyfs/keyset.h"
#include "keyfs/escape.h"
#include "keyfs/textbuf.h"

#include "bundle_priv.h"

/* "root(0):ssl-cert(112)", or "-" when no owner was recorded (format 1
 * records none: its archive's 0:0 means nothing). */
static void owner_words(FILE *f, const struct keyset_member *m, int format)
{
	if (!m->owned || format == 1) {
		fputs("-", f);
		return;
	}
	fprintf(f, "%s(%u):%s(%u)", m->user, (unsigned)m->uid, m->group, (unsigned)m->gid);
}

static void member_line(FILE *f, const struct keyset_member *m, int format)
{
	static const char *const type[] = {
		[KEYSET_FILE] = "file", [KEYSET_DIR] = "dir", [KEYSET_LINK] = "link",
	};
	size_t i;

	fprintf(f, "%s = %s %04o ", m->name, type[m->type], (unsigned)(m->mode & KEYSET_MODE_MASK));
	owner_words(f, m, format);
	if (m->link) {
		fputs(" -> ", f);
		escape_put(f, m->link);
	}
	for (i = 0; i < m->nxattr; i++) {
		fputs(i ? "," : " xattrs=", f);
		escape_put(f, m->xattr[i].name);
	}
	fputc('\n', f);
}

static void sha256_line(FILE *f, const struct keyset_member *m)
{
	uint8_t h[crypto_hash_sha256_BYTES];
	char hex[2 * sizeof(h) + 1];

	crypto_hash_sha256(h, m->data ? m->data : (const uint8_t *)"", m->len);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	fprintf(f, "%s  %s\n", hex, m->name);
}

int bundle_ini(const struct keyset *ks, int format, const char *fpr, char **ini, size_t *len)
{
	char created[sizeof("YYYY-MM-DDTHH:MM:SSZ")];
	time_t t = keyset_mtime(ks);
	struct tm tm;
	size_t i;
	FILE *f;

	*ini = NULL;
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return -EINVAL;
	f = textbuf_open(ini, len);
	if (!f)
		return -ENOMEM;
	fprintf(f, "[keyset]\nname = %s\nformat = %d\ncreated = %s\nfingerprint = %s\n",
		ks->name, format, created, fpr);
	if (ks->hint[0])
		fprintf(f, "hint = %s\n", ks->hint);
	if (keyset_top_recorded(ks)) {
		fprintf(f, "top = dir %04o ", (unsigned)(ks->top.mode & KEYSET_MODE_MASK));
		owner_words(f, &ks->top, format);
		fputc('\n', f);
	}
	/* What a signature over this file covers, member by member; the
	 * fingerprint above covers the xattr values too. */
	fputs("\n[members]\n", f);
	for (i = 0; i < ks->n; i++)
		member_line(f, &ks->m[i], format);
	fputs("\n[sha256]\n; grep -E '^[0-9a-f]{64}  ' KEYSET.ini | sha256sum -c\n", f);
	for (i = 0; i < ks->n; i++) {
		if (ks->m[i].type == KEYSET_FILE)
			sha256_line(f, &ks->m[i]);
	}
	if (fclose(f)) {
		free(*ini);
		*ini = NULL;
		return -ENOMEM;
	}
	return 0;
}
