/* `keyfsctl check` and `keyfsctl metrics`: a monitoring plugin after the
 * monitoring-plugins conventions (Nagios, Icinga, Zabbix, Sensu): one
 * line "KEYFS <STATE> - <text> | <perfdata>" and exit 0 OK, 1 WARNING,
 * 2 CRITICAL, 3 UNKNOWN. Both read MNT/.metrics, the daemon's metrics
 * in the Prometheus text format (report_metrics()): the check decides from
 * the same numbers a Prometheus alert would. */
#ifndef KEYFS_CHECK_H
#define KEYFS_CHECK_H

#include <stddef.h>
#include <time.h>

enum check_status { CHECK_OK, CHECK_WARNING, CHECK_CRITICAL, CHECK_UNKNOWN };

struct check_opts {
	long warn, crit;		/* a change waiting this long (or longer) for a backup
				 * is a warning, critical; -1: no limit */
	enum check_status never;	/* for keysets never backed up */
};

/* "90", "90s", "15m", "2h", "1d", "1w": seconds into *secs; -EINVAL else. */
int check_parse_age(const char *text, long *secs);

/* Decides from the metrics text at time now; writes the output line
 * (with its line feed) into out. */
enum check_status check_eval(const char *metrics, const struct check_opts *o, time_t now,
			     char *out, size_t size);

/* The commands: argv[0] is "check" or "metrics"; returns the exit status. */
int check_main(const char *mount, int argc, char **argv);
int check_metrics_main(const char *mount, int argc, char **argv);

#endif
