/* SPDX-License-Identifier: ISC */
/*
 * detourd - the relay daemon: start-up, privileges, signals, the loop.
 *
 * Order of start-up: read the configuration (fatal errors name file:line),
 * bind every listener as root, detach unless -f, drop to [server] user, open
 * the queue and the control socket, then run the event loop. SIGTERM and
 * SIGINT stop it gracefully, SIGHUP reloads the configuration.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/version.h"
#include "server/server.h"

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: detourd [-c FILE] [-f] [-n] [-d] [-h] [-V]\n"
	        "\n"
	        "The detour relay: accepts authenticated mail on many ports, queues it\n"
	        "durably and delivers it onward.\n"
	        "\n"
	        "  -c FILE  configuration file (default %s)\n"
	        "  -f       stay in the foreground and log to standard error\n"
	        "  -n       check the configuration, print problems, and exit\n"
	        "           (0: valid; 1: invalid, each problem as FILE:LINE: PROBLEM)\n"
	        "  -d       log debug events too\n"
	        "  -h       show this help\n"
	        "  -V       show the version\n"
	        "\n"
	        "Signals: TERM or INT stop accepting, end sessions with 421 and exit\n"
	        "within [server] shutdown_grace; HUP reloads the configuration.\n"
	        "See detourd(8) and detour.conf(5).\n",
	        CONFIG_DEFAULT_PATH);
}

/* prepare_state_dir - create the state folder, owned by the run-time user. */
static int prepare_state_dir(const struct config *cfg, const struct passwd *pw)
{
	if (mkdir(cfg->state_dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "detourd: cannot create state_dir %s: %s\n", cfg->state_dir,
		        strerror(errno));
		return -1;
	}
	if (pw != NULL && chown(cfg->state_dir, pw->pw_uid, pw->pw_gid) < 0) {
		fprintf(stderr, "detourd: cannot give %s to user %s: %s\n", cfg->state_dir,
		        pw->pw_name, strerror(errno));
		return -1;
	}
	return 0;
}

/* drop_privileges - become [server] user for good (after binding ports). */
static int drop_privileges(const struct passwd *pw)
{
	if (setgroups(0, NULL) < 0 && geteuid() == 0)
		goto fail;
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		goto fail;
	/* Make sure root cannot be regained. */
	if (pw->pw_uid != 0 && setuid(0) == 0) {
		errno = EPERM;
		goto fail;
	}
	return 0;
fail:
	log_event(LOG_LEVEL_ERROR, "server.fatal", "error=\"cannot become user %s: %s\"",
	          pw->pw_name, strerror(errno));
	return -1;
}

/* detach - become a daemon: no terminal, no inherited stdio. */
static int detach(void)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0)
		return -1;
	int fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		return -1;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
	return 0;
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	log_event(LOG_LEVEL_INFO, "server.signal", "signal=%s", sig == SIGTERM ? "TERM" : "INT");
	server_stop(arg);
}

static void on_reload_signal(evutil_socket_t sig, short what, void *arg)
{
	char *message = NULL;
	int r = server_reload(arg, &message);
	struct logline l;
	logline_init(&l, "server.reload");
	logline_str(&l, "source", "signal");
	logline_str(&l, "result", r == 0 ? "ok" : "refused");
	logline_str(&l, "message", message);
	logline_emit(&l, r == 0 ? LOG_LEVEL_INFO : LOG_LEVEL_WARN);
	free(message);
}

int main(int argc, char **argv)
{
	const char *path = CONFIG_DEFAULT_PATH;
	bool foreground = false, check_only = false, debug = false;
	int opt;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		}
	}
	while ((opt = getopt(argc, argv, "c:fndhV")) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 'n':
			check_only = true;
			break;
		case 'd':
			debug = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("detourd %s\n", DETOUR_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	char *errors = NULL;
	struct config *cfg = config_load(path, &errors);
	if (cfg == NULL) {
		fputs(errors, stderr);
		free(errors);
		return 1;
	}
	if (check_only) {
		/* The files the configuration names must be usable too. */
		const char *error = NULL;
		if (server_check_tls(cfg, &error) < 0) {
			fprintf(stderr, "%s\n", error);
			config_unref(&cfg);
			return 1;
		}
		printf("%s: configuration is valid (%zu listener%s)\n", path, cfg->n_listeners,
		       cfg->n_listeners == 1 ? "" : "s");
		config_unref(&cfg);
		return 0;
	}

	log_open("detourd", true, debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	struct passwd *pw = NULL;
	if (cfg->user != NULL && (pw = getpwnam(cfg->user)) == NULL) {
		fprintf(stderr, "detourd: no such user '%s'\n", cfg->user);
		return 1;
	}
	if (prepare_state_dir(cfg, pw) < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	/* Messages are allocated on one thread and freed on another; without
	 * a fixed trim threshold glibc hands memory back to the kernel after
	 * nearly every batch (an madvise per message). */
	mallopt(M_TRIM_THRESHOLD, 32 * 1024 * 1024);

	/* Ports are bound before detaching, so errors still reach the
	 * terminal, and before dropping root, so 25, 465 and 587 work. No
	 * thread or event base exists yet, so detaching (fork) is safe. */
	const char *error = NULL;
	struct server *srv = server_new(cfg, &error);
	config_unref(&cfg);
	if (srv == NULL) {
		fprintf(stderr, "detourd: %s\n", error);
		return 1;
	}
	if (!foreground) {
		if (detach() < 0) {
			fprintf(stderr, "detourd: cannot detach: %s\n", strerror(errno));
			return 1;
		}
		log_open("detourd", false, debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	}
	if (pw != NULL && drop_privileges(pw) < 0)
		return 1;
	/* No evthread_use_pthreads(): only the loop thread calls libevent; the
	 * spool's writer and the workers wake it through a pipe or eventfd it
	 * watches, so libevent needs no locks. */
	/* The changelist folds the add/remove of a socket's write event around
	 * every reply into at most one epoll_ctl per loop iteration. */
	struct event_config *ecfg = event_config_new();
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	struct event_base *base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	if (server_start(srv, base, &error) < 0) {
		log_event(LOG_LEVEL_ERROR, "server.fatal", "error=\"%s\"", error);
		fprintf(stderr, "detourd: %s\n", error);
		server_free(&srv);
		event_base_free(base);
		return 1;
	}

	struct event *sigterm = evsignal_new(base, SIGTERM, on_stop_signal, srv);
	struct event *sigint = evsignal_new(base, SIGINT, on_stop_signal, srv);
	struct event *sighup = evsignal_new(base, SIGHUP, on_reload_signal, srv);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	evsignal_add(sighup, NULL);

	event_base_dispatch(base);

	log_event(LOG_LEVEL_INFO, "server.exit", "messages_accepted=%llu",
	          (unsigned long long)srv->messages_accepted);
	event_free(sigterm);
	event_free(sigint);
	event_free(sighup);
	server_free(&srv);
	event_base_free(base);
	return 0;
}
