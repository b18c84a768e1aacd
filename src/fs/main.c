/* keyfs: mount a keystore as a directory of password-sealed backups.
 *
 *   keyfs [-f] [-d] [-c CONFIG] [-o OPTIONS] MOUNTPOINT
 *
 * Uses the session API rather than fuse_main() so that a stop by signal
 * exits 0 and main owns the point where secrets are wiped. */
#include <errno.h>
#include <fuse.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "keyfs/harden.h"
#include "keyfs/log.h"
#include "keyfs/metricsfile.h"
#include "keyfs/presets.h"
#include "keyfs/store_command.h"
#include "keyfs/store_live.h"

#include "fs.h"

#define EXIT_USAGE 2
#define EXIT_CONFIG 3

struct cmdline {
	char *config;
	char *source;		/* "keyfs STORE MOUNTPOINT", as mount.fuse3 calls it */
	char *mountpoint;
	int foreground;
	int debug;
	int help;
	int version;
	char *overrides[16];	/* "key=value" of -o options keyfs owns */
	size_t noverrides;
};

enum { KEY_HELP, KEY_VERSION };

static const struct fuse_opt opts[] = {
	{ "-c %s", offsetof(struct cmdline, config), 0 },
	{ "-f", offsetof(struct cmdline, foreground), 1 },
	{ "-d", offsetof(struct cmdline, debug), 1 },
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	{ "config=%s", offsetof(struct cmdline, config), 0 },
	/* The -o options of the config keys come to opt_proc() unmatched:
	 * config_option() tells them from libfuse's. */
	FUSE_OPT_END
};

/* The -o lines of config keys come from the key table (config_usage()),
 * as does the parsing of their values; the lines here are keyfs' own
 * options and libfuse's. */
static void usage(FILE *f)
{
	fprintf(f,
		"usage: keyfs [-f] [-d] [-c CONFIG] [-o OPTIONS] [STORE] MOUNTPOINT\n\n"
		"  -f                           stay in the foreground, log to stderr\n"
		"  -d                           debug logging (implies -f)\n"
		"  -c CONFIG                    INI configuration (see keyfs.ini)\n"
		"  -o allow_other               let other users in (file modes still apply)\n");
	config_usage(f);
	fprintf(f,
		"  -V, --version                print the version\n\n"
		"Passwords are never taken from the command line: write\n"
		"\"password ...\" to MOUNTPOINT/.control, or use keyfsctl.\n");
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct cmdline *cl = data;

	(void)outargs;
	switch (key) {
	case KEY_HELP:
		cl->help = 1;
		return 0;
	case KEY_VERSION:
		cl->version = 1;
		return 0;
	case FUSE_OPT_KEY_OPT:
		if (!config_option(arg))
			return 1; /* a libfuse option: pass it on */
		if (cl->noverrides == sizeof(cl->overrides) / sizeof(cl->overrides[0]))
			return -1;
		cl->overrides[cl->noverrides++] = strdup(arg);
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		if (cl->mountpoint && !cl->source) {
			/* two operands: the first was the store */
			cl->source = cl->mountpoint;
			cl->mountpoint = NULL;
		} else if (cl->mountpoint) {
			fprintf(stderr, "keyfs: too many operands\n");
			return -1;
		}
		cl->mountpoint = realpath(arg, NULL);
		if (!cl->mountpoint) {
			fprintf(stderr, "keyfs: %s: %s\n", arg, strerror(errno));
			return -1;
		}
		return 0;
	default:
		return 1; /* a libfuse option: pass it on */
	}
}

static int load_config(struct cmdline *cl, struct config *cfg)
{
	char err[512];
	const char *why;
	size_t i;

	config_defaults(cfg);
	/* presets filled in before any check: a section may name only one */
	if (cl->config && (config_load(cfg, cl->config, err, sizeof(err)) ||
			   config_presets(cfg, cl->config, err, sizeof(err)))) {
		fprintf(stderr, "keyfs: %s\n", err);
		return -1;
	}
	if (cl->source && config_set(cfg, "store", cl->source, &why)) {
		fprintf(stderr, "keyfs: %s: %s\n", cl->source, why);
		return -1;
	}
	for (i = 0; i < cl->noverrides; i++) {
		char *eq = strchr(cl->overrides[i], '=');

		*eq = '\0';
		if (config_set(cfg, cl->overrides[i], eq + 1, &why)) {
			fprintf(stderr, "keyfs: -o %s: %s\n", cl->overrides[i], why);
			return -1;
		}
	}
	if (config_check(cfg, &why)) {
		fprintf(stderr, "keyfs: %s\n", why);
		return -1;
	}
	/* The store names the backends; the configuration only keeps the
	 * name. Checked here, before anything is opened or mounted. */
	if (store_backend_check(config_backend(cfg), &why)) {
		fprintf(stderr, "keyfs: store.backend: %s\n", why);
		return -1;
	}
	return 0;
}

/* A daemon killed with SIGKILL leaves its mount behind, answering
 * ENOTCONN; mounting over it would stack a second mount. Detach it. */
static void clear_stale_mount(const char *mountpoint)
{
	struct statvfs sv;

	/* statvfs, not stat: the kernel answers stat from cached attributes
	 * for a while after the daemon died. */
	if (statvfs(mountpoint, &sv) == 0 || errno != ENOTCONN)
		return;
	if (umount2(mountpoint, MNT_DETACH) == 0)
		log_msg(LOG_WARNING, "%s: detached the stale mount of a daemon that died", mountpoint);
	else
		log_msg(LOG_ERR, "%s: stale mount, and detaching it failed: %m", mountpoint);
}

/* The memory a large store costs stays bounded: a status of a hundred
 * thousand keysets is a 20 MiB text, and glibc, after freeing one such
 * block, would raise its mmap threshold and keep the next ones in the
 * heap, one heap per thread that made them. A fixed threshold returns
 * large blocks at once; two arenas keep the FUSE and worker threads'
 * small blocks from scattering over a dozen heaps. The threshold and
 * the heap's free top both stay above a read's buffer (the kernel asks
 * for 128 KiB), so a read of an export is no mmap() and munmap(), a TLB
 * shootdown to every core, each. */
static void malloc_tune(void)
{
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	mallopt(M_TRIM_THRESHOLD, 512 * 1024);
	mallopt(M_ARENA_MAX, 2);
}

/* No core dumps and no ptrace attach: memory holds passwords and keys.
 * Without them keyfs does not start. */
static int harden(void)
{
	int ret = harden_process();

	if (ret) {
		fprintf(stderr, "keyfs: cannot disable core dumps and ptrace attach: %s; not starting\n",
			strerror(-ret));
		return ret;
	}
	umask(077);
	return 0;
}

static int process_staged(void *arg, bool verify_only, const uint8_t *data, size_t len)
{
	return import_file(arg, verify_only, data, len);
}

/* The recipients files, read whole: a line keyfs cannot seal to stops
 * the start (or a reload) rather than leaving a key out. */
static int recipients_read(struct keyfs *k, struct recipients **r)
{
	char err[512];
	int ret;

	ret = recipients_load(&k->cfg, r, err, sizeof(err));
	if (ret)
		log_msg(LOG_ERR, "%s", err);
	return ret;
}

/* Reads the recipients again; a file that is now refused keeps the
 * recipients sealing as they were. */
static int recipients_reload(struct keyfs *k)
{
	struct recipients *r;
	int ret;

	ret = recipients_read(k, &r);
	if (ret)
		log_msg(LOG_ERR, "recipients not reloaded: exports stay sealed as they were");
	else
		sealcache_set_recipients(k->sc, r);
	return ret;
}

/* Before the mount: what can fail for a reason the administrator must
 * see on the terminal (a missing store, an unsafe password file). */
static int keyfs_open(struct keyfs *k)
{
	char state[PATH_MAX];
	int ret;

	ret = 0;
	if (*k->cfg.state_dir)
		snprintf(state, sizeof(state), "%s", k->cfg.state_dir);
	else
		ret = state_default_path(k->cfg.store, state, sizeof(state));
	if (!ret)
		ret = state_open(&k->state, state);
	if (!ret)
		ret = store_open(config_backend(&k->cfg), k->cfg.store, &k->state, &k->st);
	/* Lookups of the directory store answer from memory, inotify telling
	 * what changed; live keysets, wrapped around it, are read where they
	 * live. */
	if (!ret)
		ret = storewatch_wrap(&k->st, &k->watch);
	/* command keysets, then live ones, over it */
	if (!ret)
		ret = store_command_wrap(&k->st, &k->cfg, &k->state, &k->cmds);
	if (!ret)
		ret = store_live_open(&k->st, &k->cfg, &k->state);
	if (ret && k->st.ops) {
		store_close(&k->st); /* the watcher with it */
		k->watch = NULL;
		k->cmds = NULL;
	}
	if (ret) {
		log_msg(LOG_ERR, "store %s: %s", k->cfg.store, strerror(-ret));
		return ret;
	}
	k->uid = getuid();
	k->gid = getgid();
	k->started = time(NULL);
	ret = recipients_read(k, &k->rcp);
	return ret ? ret : sources_check(&k->cfg);
}

/* .control's observer: a changed password or hint makes exports stale,
 * and the metrics tell whether exports are locked. */
static int ctl_secrets_changed(void *arg)
{
	struct keyfs *k = arg;
	int ret = sealcache_password_changed(k->sc);

	metricsfile_poke(k->mf);
	return ret;
}

static void ctl_hints_changed(void *arg)
{
	struct keyfs *k = arg;

	sealcache_queue_stale(k->sc);
	metricsfile_poke(k->mf);
}

/* SIGHUP and "reload": read again what keyfs was given from outside
 * (passwords, identities, recipients). */
static int keyfs_reload(struct keyfs *k)
{
	int ret = sources_reload(k->src), rret = recipients_reload(k);

	return ret ? ret : rret;
}

static int reload_hook(void *arg)
{
	return keyfs_reload(arg);
}

static void metrics_poke(void *arg)
{
	metricsfile_poke(((struct keyfs *)arg)->mf);
}

static int metrics_render(void *arg, char **text, size_t *len)
{
	time_t mtime;

	return report_metrics(arg, text, len, &mtime);
}

/* metrics.file: a missing directory is the administrator's to fix, and
 * no reason to keep the keys from being served. Made, and the listeners
 * set, before any thread that could tell them starts: the listeners are
 * read without a lock. */
static void metrics_new(struct keyfs *k)
{
	int ret;

	if (!*k->cfg.metrics_file)
		return;
	ret = metricsfile_new(&k->mf, k->cfg.metrics_file, metrics_render, &k->ctl);
	if (ret) {
		log_msg(LOG_ERR, "metrics file %s: %s; not written", k->cfg.metrics_file,
			strerror(-ret));
		return;
	}
	fresh_set_listener(k->fresh, metrics_poke, k);
	import_set_listener(k->im, metrics_poke, k);
}

/* The thread renders from k->ctl: started once that is set. */
static int metrics_start(struct keyfs *k)
{
	return k->mf ? metricsfile_start(k->mf) : 0;
}

/* The store watcher saw a keyset change, appear or go. */
static void store_changed(void *sc, const char *keyset)
{
	sealcache_keyset_changed(sc, keyset);
}

/* The store watcher's first pass is done: stamps come from memory. */
static void store_ready(void *sc)
{
	sealcache_store_ready(sc);
}

/* After fuse_daemonize(): threads and locked memory do not survive its
 * fork, so everything holding either is made here, before the loop
 * serves the first request. */
static int keyfs_start(struct keyfs *k)
{
	int ret;

	ret = vault_new(&k->v);
	if (!ret)
		ret = keyring_new(&k->kr);
	if (!ret)
		ret = fresh_new(&k->fresh, &k->state);
	if (!ret)
		ret = signkey_open(k->state.fd, &k->sign);
	if (!ret)
		ret = sealcache_new(&k->sc, &k->st, &k->state, k->v, &k->cfg);
	if (!ret) {
		k->signer = (struct bundle_signer){ signkey_sign, k->sign };
		sealcache_set_signer(k->sc, &k->signer);
		sealcache_set_fresh(k->sc, k->fresh);
		sealcache_set_recipients(k->sc, k->rcp);
		k->rcp = NULL;
	}
	if (!ret)
		ret = sources_new(&k->src, &k->cfg, k->v, k->kr, k->sc);
	if (!ret)
		sources_set_hup(k->src, reload_hook, k);
	if (!ret)
		ret = import_new(&k->im, &k->st, &k->state, k->v);
	if (!ret) {
		import_set_keyring(k->im, k->kr);
		import_set_signers(k->im, k->sign, k->cfg.import_signers,
				   k->cfg.import_unauthenticated == UNAUTH_REFUSE);
		import_set_max_work_factor(k->im, config_import_max_work_factor(&k->cfg));
		import_set_provider(k->im, sources_provider, k->src);
		sealcache_set_observer(k->sc, fs_changed, k);
		if (k->watch) {
			storewatch_set_listener(k->watch, store_changed, k->sc);
			storewatch_set_ready(k->watch, store_ready, k->sc);
			sealcache_await_store(k->sc);
		}
	}
	if (!ret)
		ret = stage_new(&k->stage, k->cfg.import_max_size, k->cfg.import_max_total,
				process_staged, k->im);
	if (!ret)
		metrics_new(k);
	if (!ret)
		ret = sealcache_start(k->sc);
	if (!ret && k->watch)
		ret = storewatch_start(k->watch);
	if (!ret)
		ret = store_command_start(k->cmds, store_changed, k->sc);
	if (!ret)
		ret = sources_start(k->src);
	k->ctl = (struct ctl){ .cfg = &k->cfg, .v = k->v, .st = &k->st, .state = &k->state,
			       .sc = k->sc, .fresh = k->fresh, .im = k->im, .kr = k->kr,
			       .sign = k->sign,
			       .obs = { ctl_secrets_changed, ctl_hints_changed, k, reload_hook } };
	if (!ret)
		ret = metrics_start(k);
	if (ret)
		log_msg(LOG_ERR, "starting: %s", strerror(-ret));
	return ret;
}

static void keyfs_close(struct keyfs *k)
{
	/* The thread renders from everything below: stopped first. Seal
	 * workers and the sources thread may poke until they are joined, so
	 * mf itself goes last. */
	metricsfile_stop(k->mf);
	stage_free(k->stage);
	import_free(k->im);
	sources_free(k->src);
	storewatch_stop(k->watch); /* it tells the seal cache */
	store_command_stop(k->cmds); /* so does it */
	sealcache_free(k->sc);
	fresh_free(k->fresh);
	metricsfile_free(k->mf);
	vault_free(k->v); /* wipes every password */
	keyring_free(k->kr); /* and every identity */
	signkey_free(k->sign);
	store_close(&k->st);
	state_close(&k->state);
	recipients_put(k->rcp); /* if the start stopped before the seal cache took it */
}

/* SIGINT and SIGTERM, which libfuse's handlers take for a stop. */
static const sigset_t *stop_signals(void)
{
	static sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	return &set;
}

static int serve(struct keyfs *k, struct fuse_args *args, struct cmdline *cl)
{
	struct fuse_loop_config *loop = NULL;
	struct fuse_session *se;
	int ret = 1;

	se = fs_session_new(args, k);
	if (!se)
		return 1;
	pthread_mutex_init(&k->fuse_lock, NULL);
	k->se = se;
	clear_stale_mount(cl->mountpoint);
	if (fuse_session_mount(se, cl->mountpoint))
		goto out_destroy;
	if (fuse_set_signal_handlers(se))
		goto out_unmount;
	if (fuse_daemonize(cl->foreground))
		goto out_signals;
	log_init("keyfs", cl->foreground, cl->debug);
	if (keyfs_start(k))
		goto out_signals;
	state_owner_write(&k->state, cl->mountpoint); /* after the fork: this pid */
	log_msg(LOG_NOTICE, "mounted %s on %s", k->cfg.store, cl->mountpoint);
	loop = fuse_loop_cfg_create();
	if (!loop)
		goto out_signals;
	/* A stop asked for meanwhile is taken now; the loop's threads are
	 * made from here on, so they take one too (see main()). */
	pthread_sigmask(SIG_UNBLOCK, stop_signals(), NULL);
	ret = fuse_session_loop_mt(se, loop);
	/* A positive result is the signal that stopped the loop: a clean stop. */
	ret = ret < 0 ? 1 : 0;
	fuse_loop_cfg_destroy(loop);
	log_msg(LOG_NOTICE, "unmounting %s", cl->mountpoint);
out_signals:
	pthread_mutex_lock(&k->fuse_lock);
	k->se = NULL; /* the seal cache's observer stops telling it */
	pthread_mutex_unlock(&k->fuse_lock);
	fuse_remove_signal_handlers(se);
out_unmount:
	fuse_session_unmount(se);
out_destroy:
	fuse_session_destroy(se);
	return ret;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct cmdline cl = { 0 };
	struct keyfs k = { 0 };
	char mount_opts[256];
	int ret = EXIT_USAGE;
	sigset_t hup;
	size_t i;

	malloc_tune();
	if (harden()) {
		ret = EXIT_FAILURE;
		goto out;
	}
	if (fuse_opt_parse(&args, &cl, opts, opt_proc))
		goto out;
	if (cl.help || cl.version) {
		if (cl.help)
			usage(stdout);
		else
			printf("keyfs %s (libfuse %s, libsodium %s)\n", KEYFS_VERSION,
			       fuse_pkgversion(), sodium_version_string());
		ret = 0;
		goto out;
	}
	if (!cl.mountpoint) {
		usage(stderr);
		goto out;
	}
	ret = EXIT_CONFIG;
	if (load_config(&cl, &k.cfg))
		goto out;
	cl.foreground |= cl.debug;
	/* stderr until the daemon is in the background, syslog after */
	log_init("keyfs", true, cl.debug);
	ret = EXIT_FAILURE;
	/* SIGHUP goes to the sources thread only (sigtimedwait): block it
	 * before any thread exists so that every thread inherits the mask.
	 * A stop (SIGINT, SIGTERM) goes to the loop's threads only: its
	 * handler merely marks the session ended, and only a loop thread is
	 * woken by it from its wait. Taken by another of keyfs' threads, it
	 * could leave the loop asleep until the next request. serve()
	 * unblocks them. */
	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &hup, NULL);
	pthread_sigmask(SIG_BLOCK, stop_signals(), NULL);
	if (sodium_init() < 0 || keyfs_open(&k))
		goto out_close;
	snprintf(mount_opts, sizeof(mount_opts), "-odefault_permissions,fsname=keyfs,subtype=keyfs%s",
		 k.cfg.allow_other ? ",allow_other" : "");
	if (fuse_opt_add_arg(&args, mount_opts))
		goto out_close;
	ret = serve(&k, &args, &cl);
out_close:
	keyfs_close(&k);
out:
	for (i = 0; i < cl.noverrides; i++)
		free(cl.overrides[i]);
	free(cl.mountpoint);
	free(cl.source);
	free(cl.config);
	config_free(&k.cfg);
	fuse_opt_free_args(&args);
	return ret;
}
