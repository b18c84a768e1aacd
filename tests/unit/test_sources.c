/* Password sources: a password file and a systemd credential are read
 * into the vault (and the seal cache of the in-memory store is told),
 * and refused when others may read them, when another user owns them, or
 * when the password fails the policy. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/config.h"
#include "keyfs/sealcache.h"
#include "keyfs/sources.h"
#include "keyfs/state.h"
#include "store_mem.h"
#include "tap.h"

static char dir[] = "/tmp/keyfs-test-sources.XXXXXX";

static void write_file(const char *path, const char *text, mode_t mode, uid_t owner)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || fchmod(fd, mode) ||
	    fchown(fd, owner, (gid_t)-1))
		tap_ok(false, "writing %s", path);
	if (fd >= 0)
		close(fd);
}

static bool backup_is(struct vault *v, const char *pw)
{
	return vault_is_backup(v, pw, strlen(pw));
}

static int load(struct config *c, struct vault *v, struct sealcache *sc)
{
	struct sources *s;
	int ret;

	ret = sources_new(&s, c, v, NULL, sc);
	if (!ret)
		sources_free(s);
	return ret;
}

int main(void)
{
	struct sealcache *sc = NULL;
	struct state state;
	struct store st;
	struct config c;
	struct vault *v;
	char pw[600], cmd[64];
	struct export_attr a;
	struct keyset ks = { 0 };

	if (sodium_init() < 0 || !mkdtemp(dir) || state_open(&state, dir) ||
	    store_mem_open(NULL, &state, &st) || vault_new(&v)) {
		tap_ok(false, "setup");
		return tap_done();
	}
	config_defaults(&c);
	c.work_factor = 10;
	snprintf(ks.name, sizeof(ks.name), "k");
	keyset_add(&ks, "key", 0600, 1, (const uint8_t *)"x", 1);
	store_mem_set(&st, &ks, false);
	keyset_clear(&ks);
	TAP_EQ_INT(sealcache_new(&sc, &st, &state, v, &c), 0, "a seal cache to tell");

	snprintf(pw, sizeof(pw), "%s/pw", dir);
	snprintf(c.password_file, sizeof(c.password_file), "%s", pw);
	write_file(pw, "Correct-Horse-7\n", 0600, 0);
	TAP_EQ_INT(load(&c, v, sc), 0, "a password file");
	tap_ok(backup_is(v, "Correct-Horse-7"), "... is the backup password, its line end dropped");
	tap_ok(!sealcache_attr(sc, "k", &a) && a.sealed, "... and the seal cache knows it");
	vault_forget(v);

	write_file(pw, "Correct-Horse-7\n", 0640, 0);
	TAP_EQ_INT(load(&c, v, NULL), -EACCES, "group may read it: refused");
	write_file(pw, "Correct-Horse-7\n", 0600, 65534);
	TAP_EQ_INT(sources_check(&c), -EACCES, "another user owns it: refused before the mount");
	write_file(pw, "weak\n", 0600, 0);
	TAP_EQ_INT(load(&c, v, NULL), -EINVAL, "a password the policy refuses");
	tap_ok(!vault_has_password(v), "nothing was taken");

	c.password_file[0] = '\0';
	snprintf(c.password_credential, sizeof(c.password_credential), "keyfs-pw");
	snprintf(pw, sizeof(pw), "%s/keyfs-pw", dir);
	write_file(pw, "Other-Horse-8!", 0600, 0);
	setenv("CREDENTIALS_DIRECTORY", dir, 1);
	TAP_EQ_INT(load(&c, v, NULL), 0, "a systemd credential");
	tap_ok(backup_is(v, "Other-Horse-8!"), "... is the backup password");
	unsetenv("CREDENTIALS_DIRECTORY");
	TAP_EQ_INT(load(&c, v, NULL), -EINVAL, "a credential without $CREDENTIALS_DIRECTORY");

	sealcache_free(sc);
	vault_free(v);
	store_close(&st);
	state_close(&state);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	tap_ok(!system(cmd), "temp dir removed");
	return tap_done();
}
