/* SPDX-License-Identifier: ISC */
/*
 * delivery.h - the delivery engine: takes due messages from the queue,
 * routes each recipient domain (MX, or the smarthost), talks SMTP to the
 * next hop, and records every recipient's result: delivered, deferred until
 * its next retry, or failed with a bounce to the sender.
 *
 * Owns: scheduling (when to fetch, how many messages are out at once),
 * destinations (one per recipient domain, or one for the smarthost) with
 * their routes, connections and concurrency limit, connection reuse, the
 * translation of SMTP results into queue states, bounces and delay, and one
 * log line per recipient per attempt. Does not own: the SMTP dialogue
 * (smtp_client), DNS (dns, dns_route) or the queue's storage (spool).
 * Threads: event-loop thread only.
 */
#ifndef DETOUR_DELIVERY_H
#define DETOUR_DELIVERY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct config;
struct event_base;
struct spool;
struct delivery;

/*
 * delivery_new - an engine for cfg's [delivery] section. Reads the
 * smarthost password file (so call it before dropping privileges if the
 * file is root's). our_addrs are the relay's own addresses, for the "MX is
 * this relay" loop check. Returns NULL with a message in *error_r.
 */
struct delivery *delivery_new(struct event_base *base, struct config *cfg, struct spool *spool,
                              const struct sockaddr_storage *our_addrs, size_t n_our_addrs,
                              const char **error_r);

/* delivery_start - begin: fetch everything due now (after a restart, that
 * is every pending recipient whose time has come). */
void delivery_start(struct delivery *d);

/* delivery_kick - something may be due now (a message was queued, or an
 * operator flushed the queue). Cheap to call often: fetches coalesce. */
void delivery_kick(struct delivery *d);

/* delivery_reload - use cfg for everything started from now on. Returns -1
 * with *error_r if its smarthost settings cannot be used (the old ones stay). */
int delivery_reload(struct delivery *d, struct config *cfg, const char **error_r);

/* delivery_pause - stop (or resume) taking messages from the queue, as
 * OpenSMTPD's "smtpctl pause mta" does: messages are still accepted and
 * queued; those already out for delivery finish. */
void delivery_pause(struct delivery *d, bool paused);
bool delivery_paused(const struct delivery *d);

/* delivery_stop - stop fetching and drop connections; messages out for
 * delivery keep their queue state and are tried again after a restart
 * (delivery is at least once). */
void delivery_stop(struct delivery *d);

void delivery_free(struct delivery **d);

struct delivery_stats {
	uint64_t messages_out; /* claimed from the queue, results not yet recorded */
	uint64_t connections;  /* open outbound connections */
	uint64_t delivered;    /* recipients, since start */
	uint64_t deferred;
	uint64_t failed;
	uint64_t bounces; /* notifications queued */
};

void delivery_get_stats(const struct delivery *d, struct delivery_stats *stats_r);

#endif
