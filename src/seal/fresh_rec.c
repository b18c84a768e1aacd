/* One backup record: its line in the journal, a record file or the
 * snapshot, and its place in the table (see fresh_priv.h). */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/keyset.h"

#include "fresh_priv.h"

/* A process name as status and metrics may show it: printable ASCII. */
void fr_clean_comm(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

/* The number of program name comm (printable) in f->comms, added if new;
 * 0 ("?") once the table is full. Caller holds f->lock. */
uint8_t fr_comm_id(struct fresh *f, const char *comm)
{
	unsigned k;

	for (k = 0; k < f->ncomms; k++)
		if (!strcmp(f->comms[k], comm))
			return (uint8_t)k;
	if (f->ncomms == COMMS_MAX)
		return 0;
	snprintf(f->comms[f->ncomms], FRESH_COMM_MAX, "%s", comm);
	return (uint8_t)f->ncomms++;
}

/* Caller holds f->lock. */
void fr_rec_info(const struct fresh *f, const struct fresh_rec *r, struct fresh_info *i)
{
	*i = (struct fresh_info){ .changed_at = r->changed_at, .sealed_at = r->sealed_at,
				  .backup_at = r->backup_at, .backup_sealed = r->backup_sealed,
				  .backup_uid = r->backup_uid, .seal_error = r->seal_error,
				  .locked = r->locked };
	memcpy(i->backup_comm, f->comms[r->comm], FRESH_COMM_MAX);
}

/* Caller holds f->lock. */
int fr_parse(struct fresh *f, struct fresh_rec *r, const char *text)
{
	char comm[FRESH_COMM_MAX];
	long long changed, sealed, at, bsealed;
	unsigned uid;
	int n = 0;

	if (sscanf(text, "keyfs-fresh 1 %" SCNx64 " %" SCNx64 " %lld %lld %lld %lld %u %n",
		   &r->stamp, &r->key, &changed, &sealed, &at, &bsealed, &uid, &n) < 7 || !n)
		return -EINVAL;
	snprintf(comm, sizeof(comm), "%.*s", (int)strcspn(text + n, "\n"), text + n);
	fr_clean_comm(comm);
	r->comm = comm[0] ? fr_comm_id(f, comm) : 0;
	r->seen = true;
	r->changed_at = (time_t)changed;
	r->sealed_at = (time_t)sealed;
	r->backup_at = (time_t)at;
	r->backup_sealed = (time_t)bsealed;
	r->backup_uid = (uid_t)uid;
	return 0;
}

int fr_parse_line(struct fresh *f, char *line, bool replace)
{
	char *sp = strchr(line, ' ');
	struct fresh_rec tmp = { 0 }, *r;
	uint64_t hash;

	if (!sp)
		return -EINVAL;
	*sp = '\0';
	if (!keyset_name_valid(line) || fr_parse(f, &tmp, sp + 1))
		return -EINVAL;
	hash = htab_hash(line);
	r = (struct fresh_rec *)htab_find(&f->recs, hash, fr_same_name, line);
	if (r && !replace)
		return 0;
	if (!r)
		r = fr_rec_add(f, line, hash);
	if (!r)
		return -ENOMEM;
	/* every field between the node and the name */
	memcpy((char *)r + sizeof(r->h), (char *)&tmp + sizeof(tmp.h),
	       offsetof(struct fresh_rec, name) - sizeof(tmp.h));
	return 0;
}

/* A record's file: one line, which parse() reads. */
int fr_format(const struct rec_copy *r, char text[static RECORD_MAX])
{
	return snprintf(text, RECORD_MAX, "keyfs-fresh 1 %016" PRIx64 " %016" PRIx64
			" %lld %lld %lld %lld %u %s\n", r->stamp, r->key,
			(long long)r->i.changed_at, (long long)r->i.sealed_at,
			(long long)r->i.backup_at, (long long)r->i.backup_sealed,
			(unsigned)r->i.backup_uid, r->i.backup_comm);
}

struct fresh_rec *fr_rec_add(struct fresh *f, const char *name, uint64_t h)
{
	_Static_assert(offsetof(struct fresh_rec, h) == 0, "htab_add_named() returns the hnode");
	return htab_add_named(&f->recs, sizeof(struct fresh_rec), offsetof(struct fresh_rec, name),
			      name, h);
}


bool fr_same_name(const struct hnode *h, const void *name)
{
	return !strcmp(((const struct fresh_rec *)h)->name, name);
}
