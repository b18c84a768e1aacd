/* Unit tests for presets.c: the catalog's parser and checks (with
 * file:line), a later file replacing a preset, the merge of a preset
 * into a [keyset] section (the section's own keys win, @TARGET@), unknown
 * presets refused with file:line by config_presets() and config_load(),
 * and the shipped catalog, conf/presets/presets.ini: every preset parses
 * and checks, and has what it needs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keyfs/config.h"
#include "keyfs/presets.h"

#include "tap.h"

static const char catalog[] =
	"[preset ssh]\n"
	"description = host keys\n"
	"path = /etc/ssh\n"
	"include = ssh_host_*_key ssh_host_*_key.pub\n"
	"keys = ssh_host_*_key\n"
	"on_activate = systemctl reload ssh\n"
	"\n"
	"[preset disk]\n"
	"description = volume headers\n"
	"devices = blkid -o device\n"
	"backup_command = backup @TARGET@ --to header.img\n"
	"restore_command = restore @TARGET@ --from header.img\n"
	"refresh = 86400\n";

/* The source tree's root: VECTORS is <root>/tests/vectors/age. */
static int source_path(const char *rel, char *out, size_t size)
{
	const char *vectors = getenv("VECTORS");

	return vectors && snprintf(out, size, "%s/../../../%s", vectors, rel) < (int)size ? 0 : -1;
}

static void test_parse(void)
{
	static const struct {
		const char *text, *err;
	} bad[] = {
		{ "[preset a]\ndescription = x\n", "cat.ini:2: preset a: it needs a path and include, "
		  "or a backup_command" },
		{ "[preset a]\npath = /x\ninclude = *\n", "cat.ini:2: preset a: it needs a description" },
		{ "[preset a]\ndescription = x\npath = /x\n",
		  "cat.ini:2: preset a: [keyset a]: a path needs include" },
		{ "[keyset a]\npath = /x\n", "cat.ini:2: keyset a.path: not a [preset NAME] section "
		  "(NAME as a keyset's)" },
		{ "[preset a]\n\ndescription = x\nbogus = 1\n", "cat.ini:4: preset a.bogus: unknown key" },
		{ "[preset a]\npreset = b\n", "cat.ini:2: preset a.preset: unknown key" },
		{ "[preset a]\npath = x\n", "cat.ini:2: preset a.path: must be an absolute path of at "
		  "most 4095 bytes" },
		{ "[preset a]\ndescription = x\nbackup_command = b @TARGET@\n",
		  "cat.ini:2: preset a: devices or a target (not both) go with @TARGET@ in its commands" },
		{ "[preset a]\ndescription = x\nbackup_command = b\ndevices = d\n",
		  "cat.ini:2: preset a: devices or a target (not both) go with @TARGET@ in its commands" },
		{ "[preset a]\ndescription = x\nbackup_command = b @TARGET@\ntarget = /t\n",
		  "cat.ini:2: preset a: a target needs keys, the key files discover looks for in it" },
	};
	struct presets p = { 0 };
	const struct preset *e;
	char err[512];
	size_t i;

	TAP_EQ_INT(presets_parse(&p, "cat.ini", catalog, err, sizeof(err)), 0, "a catalog parses (%s)",
		   err);
	TAP_EQ_INT(p.n, 2, "... two presets");
	e = presets_find(&p, "ssh");
	tap_ok(e && !strcmp(e->description, "host keys") && !strcmp(e->ks.path, "/etc/ssh") &&
	       !strcmp(e->keys, "ssh_host_*_key") && !strcmp(e->ks.on_activate, "systemctl reload ssh"),
	       "... with their keys");
	e = presets_find(&p, "disk");
	tap_ok(e && !strcmp(e->devices, "blkid -o device") && e->ks.refresh == 86400, "... both");
	tap_ok(!presets_find(&p, "nope"), "no such preset: NULL");
	/* a later file replaces a preset of the same name, whole */
	TAP_EQ_INT(presets_parse(&p, "site.ini", "[preset ssh]\ndescription = ours\npath = /srv/ssh\n"
				 "include = *_key\n", err, sizeof(err)), 0, "a second file parses (%s)", err);
	e = presets_find(&p, "ssh");
	tap_ok(p.n == 2 && e && !strcmp(e->ks.path, "/srv/ssh") && !*e->keys && !*e->ks.on_activate,
	       "... and replaces the preset of the same name");
	presets_free(&p);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		TAP_EQ_INT(presets_parse(&p, "cat.ini", bad[i].text, err, sizeof(err)), -EINVAL,
			   "bad catalog %zu refused", i);
		tap_ok(!strcmp(err, bad[i].err), "... as \"%s\" (got \"%s\")", bad[i].err, err);
		presets_free(&p);
	}
}

/* A catalog directory with the test catalog in it, for config_presets. */
static void test_config_presets(void)
{
	char dir[] = "/tmp/test_presets.XXXXXX", path[256], text[1024], err[512];
	const struct config_keyset *ks;
	struct config c;
	FILE *f;

	if (!tap_ok(mkdtemp(dir) != NULL, "mkdtemp"))
		return;
	snprintf(path, sizeof(path), "%s/10-test.ini", dir);
	f = fopen(path, "w");
	fputs(catalog, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/README", dir); /* not *.ini: not read */
	f = fopen(path, "w");
	fputs("[nothing]\n", f);
	fclose(f);

	snprintf(text, sizeof(text),
		 "[presets]\ndir = %s\n"
		 "[keyset a]\npreset = ssh\n"
		 "[keyset b]\npreset = ssh\npath = /srv/b\nexclude = *dsa*\non_activate = /bin/true\n"
		 "[keyset c]\npreset = disk\ntarget = /dev/sdz9\nrefresh = 60\n"
		 "[keyset plain]\npath = /x\ninclude = *\n", dir);
	config_defaults(&c);
	TAP_EQ_INT(config_parse(&c, "k.ini", text, err, sizeof(err)), 0, "parses (%s)", err);
	TAP_EQ_INT(config_presets(&c, "k.ini", err, sizeof(err)), 0, "presets fill in (%s)", err);
	ks = config_keyset(&c, "a");
	tap_ok(ks && !strcmp(ks->path, "/etc/ssh") && !strcmp(ks->include, "ssh_host_*_key ssh_host_*_key.pub") &&
	       !strcmp(ks->on_activate, "systemctl reload ssh"), "a section of a preset alone is the preset");
	ks = config_keyset(&c, "b");
	tap_ok(ks && !strcmp(ks->path, "/srv/b") && !strcmp(ks->exclude, "*dsa*") &&
	       !strcmp(ks->on_activate, "/bin/true") &&
	       !strcmp(ks->include, "ssh_host_*_key ssh_host_*_key.pub"),
	       "the section's own keys win, the rest comes from the preset");
	ks = config_keyset(&c, "c");
	tap_ok(ks && !strcmp(ks->backup_command, "backup /dev/sdz9 --to header.img") &&
	       !strcmp(ks->restore_command, "restore /dev/sdz9 --from header.img") && ks->refresh == 60,
	       "a preset of devices: its commands name the target (%s)", ks ? ks->backup_command : "-");
	ks = config_keyset(&c, "plain");
	tap_ok(ks && !strcmp(ks->include, "*") && !*ks->on_activate, "a section without a preset as it is");
	TAP_EQ_INT(config_check(&c, &(const char *){ NULL }), 0, "... and all check");
	config_free(&c);

	static const struct {
		const char *text, *err;
	} bad[] = {
		{ "\n[keyset a]\npreset = nope\n", "k.ini:5: keyset a.preset: no such preset in " },
		{ "[keyset c]\n\npreset = disk\n", "k.ini:5: keyset c.preset: this preset is one keyset "
		  "per device: the section needs target" },
		{ "[keyset a]\npreset = ssh\ntarget = /dev/x\n", "k.ini:4: keyset a.preset: target goes "
		  "with a preset whose commands name @TARGET@" },
		{ "[keyset a]\ntarget = /dev/x\n", "k.ini: keyset a.target: goes with a preset" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[presets]\ndir = %s\n%s", dir, bad[i].text);
		config_defaults(&c);
		TAP_EQ_INT(config_parse(&c, "k.ini", text, err, sizeof(err)), 0, "bad %zu parses", i);
		TAP_EQ_INT(config_presets(&c, "k.ini", err, sizeof(err)), -EINVAL, "... and is refused");
		tap_ok(!strncmp(err, bad[i].err, strlen(bad[i].err)), "... as \"%s\" (got \"%s\")",
		       bad[i].err, err);
		config_free(&c);
	}

	/* after config_load: an unknown preset stops keyfs with file:line */
	snprintf(path, sizeof(path), "%s/keyfs.conf", dir);
	f = fopen(path, "w");
	fprintf(f, "[presets]\ndir = %s\n\n[keyset x]\npreset = missing\n", dir);
	fclose(f);
	config_defaults(&c);
	TAP_EQ_INT(config_load(&c, path, err, sizeof(err)), 0, "config_load reads it");
	TAP_EQ_INT(config_presets(&c, path, err, sizeof(err)), -EINVAL, "config_presets refuses it");
	snprintf(text, sizeof(text), "%s:5: keyset x.preset: no such preset in %s", path, dir);
	tap_ok(!strcmp(err, text), "... as \"%s\"", err);
	config_free(&c);
	/* a catalog directory that is not there */
	config_defaults(&c);
	config_parse(&c, "k.ini", "[presets]\ndir = /nonexistent/presets\n[keyset a]\npreset = ssh\n",
		     err, sizeof(err));
	TAP_EQ_INT(config_presets(&c, "k.ini", err, sizeof(err)), -ENOENT, "no catalog: -ENOENT");
	tap_ok(!strcmp(err, "/nonexistent/presets: No such file or directory"), "... as %s", err);
	config_free(&c);
	tap_ok(tap_rmtree(dir) == 0, "cleanup");
}

/* The shipped catalog: each preset checks, and those the issue names are
 * there; a live one's include covers its keys. */
static void test_shipped(void)
{
	static const char *const names[] = {
		"openssh", "certbot", "acme.sh", "acme.sh-etc", "wireguard", "openvpn", "strongswan",
		"strongswan-ipsec", "ssl-private", "bind", "knot", "tor", "krb5-keytab", "gnupg",
		"kubernetes", "etcd", "docker-swarm", "systemd-credential", "mysql-keyring",
		"mariadb-encryption", "luks",
	};
	const struct preset *e;
	struct presets p = { 0 };
	char dir[4096], err[512];
	struct config c;
	size_t i;

	if (!tap_ok(source_path("conf/presets", dir, sizeof(dir)) == 0, "VECTORS is set"))
		return;
	TAP_EQ_INT(presets_load(&p, dir, err, sizeof(err)), 0, "the shipped catalog loads (%s)", err);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		tap_ok(presets_find(&p, names[i]) != NULL, "it has %s", names[i]);
	for (i = 0; i < p.n; i++) {
		e = &p.v[i];
		tap_ok(*e->description && (*e->ks.path || *e->ks.backup_command),
		       "%s: a description, and a path or a command", e->ks.name);
		/* a section naming only the preset (and a device) is a keyset */
		config_defaults(&c);
		snprintf(err, sizeof(err), "[keyset k]\npreset = %s\n%s", e->ks.name,
			 *e->devices ? "target = /dev/sdz9\n" : "");
		config_parse(&c, "k.ini", err, err, sizeof(err));
		snprintf(c.presets_dir, sizeof(c.presets_dir), "%s", dir);
		TAP_EQ_INT(config_presets(&c, "k.ini", err, sizeof(err)), 0, "%s as a preset (%s)",
			   e->ks.name, err);
		TAP_EQ_INT(config_check(&c, &(const char *){ NULL }), 0, "... checks");
		tap_ok(!strstr(c.keysets[0].backup_command, "@TARGET@") &&
		       !strstr(c.keysets[0].restore_command, "@TARGET@"), "... names its target");
		config_free(&c);
	}
	presets_free(&p);
}

int main(void)
{
	test_parse();
	test_config_presets();
	test_shipped();
	return tap_done();
}
