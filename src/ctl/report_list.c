/* The list of every keyset, .keysets, for keyfsctl list: a line per
 * keyset in tab-separated fields for programs, made as it is read
 * (control.h). Like the status it carries no secret, and every text from
 * outside keyfs goes through escape.h. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/escape.h"
#include "keyfs/store.h"
#include "keyfs/textbuf.h"

#include "report_priv.h"

/* Keysets whose lines are made at a time: about 32 KiB of text. */
#define LIST_CHUNK 256

static const char heading[] = "# keyset\tstate\tsealed_at\tfingerprint\tsealed_by\t"
			      "inactive_versions\tbackup\tchanged_at\tbackup_at\tbackup_by\tproblem\n";

struct list_reader {
	struct ctl *c;
	pthread_mutex_t lock;	/* the reads of one open file may come at once */
	char **names;		/* the keysets at open, sorted */
	size_t n;
	size_t next;		/* the first keyset whose line is not made yet */
	char *buf;		/* the text made and not read past yet ... */
	size_t len, cap;
	size_t off;		/* ... from this offset on */
};

/* One field of a list line: text escaped (no tab, no newline can come
 * through), "-" for none; tab after it unless it ends the line. */
static void list_field(FILE *f, const char *text, bool last)
{
	if (*text)
		escape_put(f, text);
	else
		put(f, "-");
	fputc_unlocked(last ? '\n' : '\t', f);
}

static void list_line(FILE *f, const char *name, const struct ks_info *i, int err)
{
	static const char *const backups[] = {
		[FRESH_BACKED_UP] = "backed-up", [FRESH_CHANGED] = "changed",
		[FRESH_NEVER] = "never",
	};
	const struct fresh_info *b = &i->r.backup;
	char versions[256] = "", changed[32] = "", backed[32] = "";
	size_t k, n = 0;

	list_field(f, name, false);
	put(f, err == -EPERM ? "not-exported\t" : err ? "unreadable\t" :
	       i->r.current ? "sealed\t" : "not-sealed\t");
	list_field(f, err ? "" : i->sealed, false);
	list_field(f, err ? "" : i->r.fpr, false);
	list_field(f, err ? "" : i->r.sealer, false);
	for (k = 0; k < i->nversions && n + 12 < sizeof(versions); k++)
		n += (size_t)snprintf(versions + n, sizeof(versions) - n, "%s%u", k ? "," : "",
				      i->versions[k]);
	list_field(f, versions, false);
	if (!err && i->r.fresh) {
		report_iso_time(b->changed_at, changed);
		report_iso_time(b->backup_at, backed);
	}
	list_field(f, !err && i->r.fresh ? backups[fresh_state_of(b)] : "", false);
	list_field(f, changed, false);
	list_field(f, backed, false);
	list_field(f, !err && i->r.fresh && b->backup_at ? b->backup_comm : "", false);
	list_field(f, err == -EPERM ? i->r.why : err ? strerror(-err) :
		   b->seal_error ? strerror(-b->seal_error) : "", true);
}

/* Back to the start: the heading only. */
static int list_rewind(struct list_reader *r)
{
	char *text = strdup(heading);

	if (!text)
		return -ENOMEM;
	free(r->buf);
	r->buf = text;
	r->len = r->cap = sizeof(heading) - 1;
	r->off = 0;
	r->next = 0;
	return 0;
}

/* Appends text to what is not read yet, dropping the first drop bytes.
 * The buffer is kept from read to read: a fresh one for each would be
 * new pages, faulted in, for every 128 KiB a reader asks. */
static int list_append(struct list_reader *r, size_t drop, const char *text, size_t len)
{
	memmove(r->buf, r->buf + drop, r->len - drop);
	r->len -= drop;
	r->off += drop;
	return textbuf_append(&r->buf, &r->len, &r->cap, text, len);
}

/* Drops the text before off and makes the next LIST_CHUNK keysets'
 * lines after the rest. */
static int list_more(struct list_reader *r, size_t off)
{
	size_t drop = off > r->off ? off - r->off : 0, from = r->next, end, len;
	struct ks_info info;
	char *text;
	FILE *f;
	int ret;

	if (drop > r->len)
		drop = r->len;
	end = r->n - from > LIST_CHUNK ? from + LIST_CHUNK : r->n;
	f = textbuf_open(&text, &len);
	if (!f)
		return -ENOMEM;
	store_batch(r->c->st, true);
	for (r->next = from; r->next < end; r->next++) {
		/* what is read unset; the report's text fields are set by it */
		info.versions = NULL;
		info.nversions = 0;
		list_line(f, r->names[r->next], &info,
			  report_ks_info(r->c, r->names[r->next], &info, true));
		free(info.versions);
	}
	store_batch(r->c->st, false);
	ret = report_finish(f, &text, 0);
	if (!ret)
		ret = list_append(r, drop, text, len);
	if (ret)
		r->next = from; /* made again by the next read */
	free(text);
	return ret;
}

int report_list_open(struct ctl *c, struct list_reader **out)
{
	struct list_reader *r = calloc(1, sizeof(*r));
	int ret;

	if (!r)
		return -ENOMEM;
	r->c = c;
	pthread_mutex_init(&r->lock, NULL);
	ret = c->st->ops->list(c->st->priv, &r->names, &r->n);
	if (ret == 0)
		ret = list_rewind(r);
	if (ret) {
		report_list_close(r);
		return ret;
	}
	*out = r;
	return 0;
}

ssize_t report_list_read(struct list_reader *r, char *buf, size_t size, off_t off)
{
	ssize_t ret = 0;
	size_t at;

	if (off < 0)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	if ((size_t)off < r->off) {
		ret = list_rewind(r);
		if (ret)
			goto out;
	}
	while ((size_t)off - r->off + size > r->len && r->next < r->n) {
		ret = list_more(r, (size_t)off);
		if (ret)
			goto out;
	}
	at = (size_t)off - r->off;
	if (at < r->len) {
		ret = (ssize_t)(size < r->len - at ? size : r->len - at);
		memcpy(buf, r->buf + at, (size_t)ret);
	}
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

void report_list_close(struct list_reader *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	store_list_free(r->names);
	free(r->buf);
	free(r);
}
