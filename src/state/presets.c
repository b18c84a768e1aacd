/* The preset catalog and presets in the configuration (presets.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/config.h"
#include "keyfs/keyset.h"
#include "keyfs/presets.h"

#include "inifile.h"
#include "state/presets_dir.h"

#define TARGET_MARK "@TARGET@"

const char *presets_dir(const struct config *c)
{
	return *c->presets_dir ? c->presets_dir : PRESETS_DIR_DEFAULT;
}

const struct preset *presets_find(const struct presets *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (!strcmp(p->v[i].ks.name, name))
			return &p->v[i];
	return NULL;
}

void presets_free(struct presets *p)
{
	free(p->v);
	memset(p, 0, sizeof(*p));
}

/* The preset of section name, added if new; one of an earlier file is
 * replaced. */
static struct preset *preset_section(struct presets *p, const char *name, int line)
{
	struct preset *e = (struct preset *)presets_find(p, name);

	if (!e) {
		if (p->n == PRESETS_MAX)
			return NULL;
		e = realloc(p->v, (p->n + 1) * sizeof(*e));
		if (!e)
			return NULL;
		p->v = e;
		e += p->n++;
	} else if (e->file == p->files) {
		return e;
	}
	memset(e, 0, sizeof(*e));
	strcpy(e->ks.name, name);
	e->file = p->files;
	e->line = line;
	return e;
}

static int text_set(char *field, size_t size, const char *value, const char **why)
{
	if (!*value || strlen(value) >= size) {
		*why = "must not be empty or too long";
		return -EINVAL;
	}
	strcpy(field, value);
	return 0;
}

static int on_key(void *arg, const char *section, const char *key, const char *value, int line,
		  const char **why)
{
	struct presets *p = arg;
	struct preset *e;

	if (strncmp(section, "preset ", 7) || !keyset_name_valid(section + 7)) {
		*why = "not a [preset NAME] section (NAME as a keyset's)";
		return -EINVAL;
	}
	e = preset_section(p, section + 7, line);
	if (!e) {
		*why = p->n == PRESETS_MAX ? "too many presets" : "out of memory";
		return -ENOMEM;
	}
	if (!strcmp(key, "description"))
		return text_set(e->description, sizeof(e->description), value, why);
	if (!strcmp(key, "keys"))
		return text_set(e->keys, sizeof(e->keys), value, why);
	if (!strcmp(key, "devices"))
		return text_set(e->devices, sizeof(e->devices), value, why);
	/* a preset is not made of presets */
	if (!strcmp(key, "preset")) {
		*why = "unknown key";
		return -ENOENT;
	}
	return config_keyset_set(&e->ks, key, value, why);
}

/* What is wrong with preset e, or NULL. */
static const char *preset_wrong(struct preset *e)
{
	bool cmd = *e->ks.backup_command, mark;
	struct config one;
	const char *why = NULL;

	if (!*e->description)
		return "it needs a description";
	if (!cmd && !*e->ks.path)
		return "it needs a path and include, or a backup_command";
	if (*e->keys && !*e->ks.path && !*e->ks.target)
		return "keys goes with a path or a target";
	mark = strstr(e->ks.backup_command, TARGET_MARK) || strstr(e->ks.restore_command, TARGET_MARK);
	if (mark != (*e->devices || *e->ks.target) || (*e->devices && *e->ks.target))
		return "devices or a target (not both) go with " TARGET_MARK " in its commands";
	if (*e->ks.target && !*e->keys)
		return "a target needs keys, the key files discover looks for in it";
	/* the rest as any [keyset] section is checked */
	config_defaults(&one);
	one.keysets = &e->ks;
	one.nkeysets = 1;
	return config_check(&one, &why) ? why : NULL;
}

int presets_parse(struct presets *p, const char *name, const char *text, char *err,
		  size_t errlen)
{
	const char *why;
	size_t i;
	int ret;

	p->files++;
	ret = inifile_parse(name, text, on_key, p, err, errlen);
	for (i = 0; !ret && i < p->n; i++) {
		if (p->v[i].file != p->files || !(why = preset_wrong(&p->v[i])))
			continue;
		snprintf(err, errlen, "%s:%d: preset %s: %s", name, p->v[i].line, p->v[i].ks.name,
			 why);
		ret = -EINVAL;
	}
	return ret;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int presets_load(struct presets *p, const char *dir, char *err, size_t errlen)
{
	char **names = NULL, path[PATH_MAX], *text, **grown;
	size_t n = 0, i, len;
	struct dirent *de;
	DIR *d;
	int ret = 0;

	d = opendir(dir);
	if (!d) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return ret;
	}
	while (!ret && (de = readdir(d))) {
		len = strlen(de->d_name);
		if (len < 5 || de->d_name[0] == '.' || strcmp(de->d_name + len - 4, ".ini"))
			continue;
		grown = realloc(names, (n + 1) * sizeof(*names));
		if (grown)
			names = grown;
		if (!grown || !(names[n++] = strdup(de->d_name))) {
			n -= !!grown;
			ret = -ENOMEM;
			snprintf(err, errlen, "%s: %s", dir, strerror(ENOMEM));
		}
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), by_name);
	for (i = 0; !ret && i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		ret = inifile_read(path, &text, err, errlen);
		if (!ret)
			ret = presets_parse(p, path, text, err, errlen);
		free(text);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ret;
}

/* Replaces each TARGET_MARK in field (size bytes) by dev. */
static int put_target(char *field, size_t size, const char *dev)
{
	char out[1024], *mark;
	size_t n = 0;
	const char *p = field;

	if (!strstr(field, TARGET_MARK))
		return 0;
	while ((mark = strstr(p, TARGET_MARK))) {
		n += (size_t)snprintf(out + n, n < sizeof(out) ? sizeof(out) - n : 0, "%.*s%s",
				      (int)(mark - p), p, dev);
		p = mark + strlen(TARGET_MARK);
	}
	n += (size_t)snprintf(out + n, n < sizeof(out) ? sizeof(out) - n : 0, "%s", p);
	if (n >= size || n >= sizeof(out))
		return -EINVAL;
	memcpy(field, out, n + 1);
	return 0;
}

int preset_apply(const struct preset *p, struct config_keyset *ks, const char **why)
{
	static const char zero[PATH_MAX];
	const struct config_key *k;

	if (*p->devices && !*ks->target) {
		*why = "this preset is one keyset per device: the section needs target";
		return -EINVAL;
	}
	if (!*p->devices && !*p->ks.target && *ks->target) {
		*why = "target goes with a preset whose commands name " TARGET_MARK;
		return -EINVAL;
	}
	/* commands are split on spaces */
	if (strpbrk(ks->target, " \t")) {
		*why = "target must not hold spaces";
		return -EINVAL;
	}
	for (k = config_keyset_keys; k->name; k++) {
		char *to = (char *)ks + k->offset;
		const char *from = (const char *)&p->ks + k->offset;

		bool text = k->type == CONFIG_TEXT || k->type == CONFIG_PATH || k->type == CONFIG_NAME;

		if (text ? !*to : k->size <= sizeof(zero) && !memcmp(to, zero, k->size))
			memcpy(to, from, k->size);
		if (*ks->target && k->type == CONFIG_TEXT && put_target(to, k->size, ks->target)) {
			*why = "a command is too long with the target in it";
			return -EINVAL;
		}
	}
	return 0;
}

int config_presets(struct config *c, const char *name, char *err, size_t errlen)
{
	struct presets cat = { 0 };
	const struct preset *p;
	bool loaded = false;
	const char *why;
	size_t i;
	int ret = 0;

	for (i = 0; !ret && i < c->nkeysets; i++) {
		struct config_keyset *ks = &c->keysets[i];

		if (!*ks->preset && *ks->target) {
			snprintf(err, errlen, "%s: keyset %s.target: goes with a preset", name,
				 ks->name);
			ret = -EINVAL;
			break;
		}
		if (!*ks->preset)
			continue;
		if (!loaded) {
			ret = presets_load(&cat, presets_dir(c), err, errlen);
			loaded = true;
			if (ret)
				break;
		}
		p = presets_find(&cat, ks->preset);
		if (!p) {
			snprintf(err, errlen, "%s:%d: keyset %s.preset: no such preset in %s", name,
				 ks->preset_line, ks->name, presets_dir(c));
			ret = -EINVAL;
		} else if (preset_apply(p, ks, &why)) {
			snprintf(err, errlen, "%s:%d: keyset %s.preset: %s", name, ks->preset_line,
				 ks->name, why);
			ret = -EINVAL;
		}
	}
	presets_free(&cat);
	return ret;
}
