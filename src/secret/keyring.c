/* Identities held for import and verify, each with the recipient it
 * opens and the origins that gave it (see keyring.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/keyring.h"

_Static_assert(KEYRING_ORIGINS <= 8 * sizeof(unsigned), "an origin is a bit");

struct entry {
	struct age_identity id;	/* its secret is in guarded memory */
	char recipient[AGE_IDENTITY_RECIPIENT_MAX];
	unsigned origins;	/* 1 << enum keyring_origin, for each */
};

struct keyring {
	pthread_rwlock_t lock;
	struct entry e[KEYRING_MAX];	/* e[0..n) are held; protected by lock */
	size_t n;			/* protected by lock */
};

int keyring_new(struct keyring **out)
{
	pthread_rwlockattr_t attr;
	struct keyring *kr;

	kr = calloc(1, sizeof(*kr));
	if (!kr)
		return -ENOMEM;
	/* As the vault's: imports hold read locks for whole unseals, and
	 * "forget" must not starve behind them. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&kr->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	*out = kr;
	return 0;
}

static void clear_all(struct keyring *kr)
{
	size_t i;

	for (i = 0; i < kr->n; i++)
		age_identity_clear(&kr->e[i].id);
	memset(kr->e, 0, sizeof(kr->e));
	kr->n = 0;
}

void keyring_free(struct keyring *kr)
{
	if (!kr)
		return;
	clear_all(kr);
	pthread_rwlock_destroy(&kr->lock);
	free(kr);
}

static long find(const struct entry *e, size_t n, const char *recipient)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(e[i].recipient, recipient))
			return (long)i;
	return -1;
}

/* Moves the lists' identities into in[], one per recipient, and frees the
 * lists; an identity without a recipient to tell it by, or one already
 * taken, is wiped. */
static int take(struct age_identity_list *l, size_t n, struct entry **in, size_t *nin)
{
	size_t i, j, total = 0;
	struct entry *e;
	int ret = 0;

	for (i = 0; i < n; i++)
		total += l[i].n;
	*nin = 0;
	*in = e = calloc(total ? total : 1, sizeof(*e));
	if (!e)
		ret = -ENOMEM;
	for (i = 0; !ret && i < n; i++)
		for (j = 0; j < l[i].n; j++) {
			e[*nin].id = l[i].id[j];
			memset(&l[i].id[j], 0, sizeof(l[i].id[j]));
			if (age_identity_recipient(&e[*nin].id, e[*nin].recipient,
						   sizeof(e[*nin].recipient)) ||
			    find(e, *nin, e[*nin].recipient) >= 0)
				age_identity_clear(&e[*nin].id);
			else
				(*nin)++;
		}
	for (i = 0; i < n; i++)
		age_identity_list_free(&l[i]);
	return ret;
}

/* The origins of held entry e once o gives in[0..nin) (and, replacing,
 * nothing else). */
static unsigned origins_after(const struct entry *e, unsigned bit, const struct entry *in,
			      size_t nin, bool replace)
{
	if (find(in, nin, e->recipient) >= 0)
		return e->origins | bit;
	return replace ? e->origins & ~bit : e->origins;
}

/* How many identities merging in[] would leave, and whether anything
 * would change; caller holds a lock. */
static size_t plan(struct keyring *kr, unsigned bit, const struct entry *in, size_t nin,
		   bool replace, bool *changed)
{
	size_t i, after = 0;
	unsigned o;

	*changed = false;
	for (i = 0; i < kr->n; i++) {
		o = origins_after(&kr->e[i], bit, in, nin, replace);
		*changed |= o != kr->e[i].origins;
		after += o != 0;
	}
	for (i = 0; i < nin; i++)
		if (find(kr->e, kr->n, in[i].recipient) < 0) {
			after++;
			*changed = true;
		}
	return after;
}

/* Caller holds the write lock and checked the room. What is moved in is
 * zeroed in in[]. */
static void apply(struct keyring *kr, unsigned bit, struct entry *in, size_t nin, bool replace)
{
	size_t i, j = 0;

	for (i = 0; i < kr->n; i++) {
		kr->e[i].origins = origins_after(&kr->e[i], bit, in, nin, replace);
		if (!kr->e[i].origins) {
			age_identity_clear(&kr->e[i].id);
			continue;
		}
		if (j != i) {
			kr->e[j] = kr->e[i];
			memset(&kr->e[i], 0, sizeof(kr->e[i]));
		}
		j++;
	}
	kr->n = j;
	for (i = 0; i < nin; i++) {
		if (find(kr->e, kr->n, in[i].recipient) >= 0)
			continue;
		kr->e[kr->n] = in[i];
		kr->e[kr->n].origins = bit;
		kr->n++;
		memset(&in[i], 0, sizeof(in[i]));
	}
}

/* Looks under the read lock first: the agent's unchanged answer, every
 * half minute, never waits behind a running unseal. */
static int merge(struct keyring *kr, enum keyring_origin o, struct age_identity_list *l,
		 size_t n, bool replace)
{
	unsigned bit = 1u << o;
	struct entry *in = NULL;
	size_t nin = 0, i;
	bool changed;
	int ret;

	ret = take(l, n, &in, &nin);
	if (ret)
		goto out;
	pthread_rwlock_rdlock(&kr->lock);
	plan(kr, bit, in, nin, replace, &changed);
	pthread_rwlock_unlock(&kr->lock);
	if (!changed)
		goto out;
	/* Decide again: the keyring may have changed between the locks. */
	pthread_rwlock_wrlock(&kr->lock);
	if (plan(kr, bit, in, nin, replace, &changed) > KEYRING_MAX)
		ret = -ENOSPC;
	else if (changed)
		apply(kr, bit, in, nin, replace);
	pthread_rwlock_unlock(&kr->lock);
	if (!ret)
		ret = changed;
out:
	for (i = 0; i < nin; i++)
		age_identity_clear(&in[i].id);
	free(in);
	return ret;
}

int keyring_add(struct keyring *kr, enum keyring_origin o, struct age_identity_list *l,
		size_t n)
{
	return merge(kr, o, l, n, false);
}

int keyring_replace(struct keyring *kr, enum keyring_origin o, struct age_identity_list *l,
		    size_t n)
{
	return merge(kr, o, l, n, true);
}

void keyring_forget(struct keyring *kr)
{
	pthread_rwlock_wrlock(&kr->lock);
	clear_all(kr);
	pthread_rwlock_unlock(&kr->lock);
}

void keyring_forget_from(struct keyring *kr, enum keyring_origin o)
{
	keyring_replace(kr, o, NULL, 0);
}

size_t keyring_read(struct keyring *kr, struct age_identity *id, size_t max)
{
	size_t i;

	pthread_rwlock_rdlock(&kr->lock);
	for (i = 0; i < kr->n && i < max; i++)
		id[i] = kr->e[i].id;
	return i;
}

void keyring_read_end(struct keyring *kr)
{
	pthread_rwlock_unlock(&kr->lock);
}

size_t keyring_count(struct keyring *kr)
{
	size_t n;

	pthread_rwlock_rdlock(&kr->lock);
	n = kr->n;
	pthread_rwlock_unlock(&kr->lock);
	return n;
}

const char *keyring_origin_name(enum keyring_origin o)
{
	static const char *const names[KEYRING_ORIGINS] = {
		[KEYRING_CONTROL] = "control", [KEYRING_FILE] = "file",
		[KEYRING_CREDENTIAL] = "credential", [KEYRING_AGENT] = "agent",
	};

	return o < KEYRING_ORIGINS ? names[o] : "?";
}

static void report_origins(FILE *f, unsigned origins)
{
	const char *sep = " (";
	int o;

	for (o = 0; o < KEYRING_ORIGINS; o++)
		if (origins & 1u << o) {
			fprintf(f, "%s%s", sep, keyring_origin_name(o));
			sep = ", ";
		}
	fprintf(f, ")\n");
}

void keyring_report(struct keyring *kr, FILE *f)
{
	size_t i;

	if (!kr) {
		fprintf(f, "identities: 0\n");
		return;
	}
	pthread_rwlock_rdlock(&kr->lock);
	fprintf(f, "identities: %zu\n", kr->n);
	for (i = 0; i < kr->n; i++) {
		fprintf(f, "  %s", kr->e[i].recipient);
		report_origins(f, kr->e[i].origins);
	}
	pthread_rwlock_unlock(&kr->lock);
}
