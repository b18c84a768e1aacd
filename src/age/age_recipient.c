/* age recipient and identity types: the table of registered types and
 * the rules that span a header's stanzas. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/age_recipient.h"

/* The registered types: one line per src/age_<type>.c. */
static const struct age_type *const types[] = {
	&age_scrypt_type,
	&age_x25519_type,
	&age_ssh_ed25519_type,
};

void age_recipient_clear(struct age_recipient *r)
{
	if (r->ops && r->ops->destroy)
		r->ops->destroy(r->priv);
	memset(r, 0, sizeof(*r));
}

void age_identity_clear(struct age_identity *id)
{
	if (id->ops && id->ops->destroy)
		id->ops->destroy(id->priv);
	memset(id, 0, sizeof(*id));
}

int age_identity_recipient(const struct age_identity *id, char *out,
			   size_t cap)
{
	if (!id->ops || !id->ops->recipient)
		return -ENOTSUP;
	return id->ops->recipient(id, out, cap);
}

const struct age_type *age_type_find(const struct age_stanza *s)
{
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (age_stanza_is(s, types[i]->name))
			return types[i];
	return NULL;
}

int age_stanzas_check(const struct age_stanza *s, size_t n)
{
	const struct age_type *t;
	size_t i;

	for (i = 0; i < n; i++) {
		t = age_type_find(&s[i]);
		if (!t)
			continue;
		if ((t->alone && n > 1) || t->check(&s[i]) < 0)
			return -EINVAL;
	}
	return 0;
}

int age_recipients_check(const struct age_recipient *r, size_t n)
{
	size_t i;

	if (!r || n == 0)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!r[i].ops || (r[i].ops->type->alone && n > 1))
			return -EINVAL;
	return 0;
}
