/* The state the password sources share with keyfs-agent's thread
 * (sources.c, sources_agent.c). */
#ifndef KEYFS_SOURCES_PRIV_H
#define KEYFS_SOURCES_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "keyfs/sources.h"

/* Lock rule: s->lock is never held while waiting for a vault lock, nor
 * across agent I/O; so a FUSE thread waits for it only while another
 * posts a need or reads the counters. */
struct sources {
	const struct config *cfg;
	struct vault *v;
	struct sealcache *sc;
	struct keyring *kr;	/* NULL: identities are not read */
	int (*hup)(void *arg);	/* SIGHUP's work; set before the thread starts */
	void *hup_arg;
	pthread_mutex_t lock;
	pthread_cond_t need_cv;	/* a need was posted, or stop: the agent thread */
	pthread_cond_t answer_cv;	/* a round of questions ended: the waiters */
	uint64_t posted;	/* needs posted so far; protected by lock */
	uint64_t answered;	/* needs 1..answered are answered; protected by lock */
	bool asked_once;	/* a round ended since the start; protected by lock */
	bool stop;		/* protected by lock */
	/* The agent thread's own, unlocked (sources_new() before it). */
	int agent_err;		/* the agent's last error, logged once */
	bool told_no_own;	/* the agent knows no "own": logged */
	bool told_no_ids;	/* nor "identities" */
	/* Set by sources_start(), before the FUSE threads exist. */
	bool started;		/* thread */
	bool agent_running;	/* agent */
	pthread_t thread;	/* SIGHUP */
	pthread_t agent;	/* the only thread that talks to the agent */
};

static inline void password_changed(struct sources *s)
{
	if (s->sc)
		sealcache_password_changed(s->sc);
}

/* Asks the agent soon, waiting for nothing. */
void sources_agent_ask_soon(struct sources *s);
/* The only thread that talks to the agent (pthread_create()). */
void *sources_agent_thread(void *arg);

#endif
