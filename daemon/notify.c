/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the service manager is told: READY=1, RELOADING=1, STOPPING=1, a
 * one-line STATUS= and the watchdog.  Everything is sent from the event
 * loop, so a loop that hangs stops the watchdog pings and gets us killed. */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "kvmid.h"

/* STATUS= is recomputed at most this often, and sent only when it changed. */
#define NOTIFY_STATUS_INTERVAL_USEC 1000000ULL

/* One service manager per process, as NOTIFY_SOCKET is per process. */
static struct {
        Server *server;
        bool managed;                   /* NOTIFY_SOCKET is set */
        bool stopping;                  /* STATUS= no longer follows the counters */
        bool send_failed;               /* logged once */
        struct event *ev_status, *ev_watchdog;
        char status[256];               /* the last STATUS= sent */
} notify;

static void notify_send(const char *msg) {
        int r;

        if (!notify.managed)
                return;
        r = sd_notify(false, msg);
        if (r < 0 && !notify.send_failed) {
                notify.send_failed = true;
                log_warning_errno(r, "cannot notify the service manager: %m");
        }
}

static void notify_format_status(const Server *s, char *buf, size_t size) {
        size_t domains = domain_count(s), ready = 0;

        for (const Domain *d = s->domains; d; d = d->next)
                if (d->kvmi_state == DOMAIN_KVMI_READY)
                        ready++;
        size_t sessions = session_count(s), subscribers = session_subscriber_count(s);
        const char *lv = libvirt_status_word(s);
        snprintf(buf, size, "Serving: %zu domain%s, %zu KVMI channel%s ready, %zu session%s, %zu subscriber%s, "
                 "%u connection%s%s%s",
                 domains, domains == 1 ? "" : "s", ready, ready == 1 ? "" : "s", sessions, sessions == 1 ? "" : "s",
                 subscribers, subscribers == 1 ? "" : "s", s->n_connections, s->n_connections == 1 ? "" : "s",
                 lv ? "; libvirt " : "", lv ?: "");
}

/* Sends "<prefix>STATUS=<summary>" if the summary changed or prefix is set. */
static void notify_status(const char *prefix) {
        char now[sizeof notify.status], msg[sizeof notify.status + 64];

        notify_format_status(notify.server, now, sizeof now);
        if (!prefix && streq(now, notify.status))
                return;
        memcpy(notify.status, now, sizeof now);
        snprintf(msg, sizeof msg, "%sSTATUS=%s", prefix ?: "", now);
        notify_send(msg);
}

static void notify_on_status(evutil_socket_t fd, short what, void *userdata) {
        if (!notify.stopping)
                notify_status(NULL);
}

static void notify_on_watchdog(evutil_socket_t fd, short what, void *userdata) {
        notify_send("WATCHDOG=1");
}

static struct event *notify_timer(struct event_base *base, uint64_t usec, event_callback_fn fn) {
        struct timeval tv = { .tv_sec = (time_t) (usec / 1000000), .tv_usec = (suseconds_t) (usec % 1000000) };
        struct event *ev = event_new(base, -1, EV_PERSIST, fn, NULL);

        if (ev && event_add(ev, &tv) < 0) {
                event_free(ev);
                return NULL;
        }
        return ev;
}

/* First call: also start the STATUS= refresh and, when the manager asks for
 * it (WatchdogSec=, with WATCHDOG_PID naming us), the watchdog pings at half
 * its interval. */
void notify_ready(Server *s) {
        uint64_t watchdog_usec = 0;
        int r;

        if (!notify.server) {
                notify.server = s;
                notify.managed = getenv("NOTIFY_SOCKET") != NULL;
                if (!notify.managed)
                        return;
                notify.ev_status = notify_timer(s->base, NOTIFY_STATUS_INTERVAL_USEC, notify_on_status);
                if (!notify.ev_status)
                        log_warning("cannot start the STATUS= timer: out of memory");
                r = sd_watchdog_enabled(false, &watchdog_usec);
                if (r < 0)
                        log_warning_errno(r, "ignoring the watchdog settings of the service manager: %m");
                else if (r > 0) {
                        notify.ev_watchdog = notify_timer(s->base, MAX(watchdog_usec / 2, 1U), notify_on_watchdog);
                        if (notify.ev_watchdog)
                                log_debug("watchdog: pinging every %" PRIu64 " us", watchdog_usec / 2);
                        else
                                log_error("cannot start the watchdog timer: out of memory");
                }
        }
        notify.stopping = false;
        notify_status(notify.ev_watchdog ? "READY=1\nWATCHDOG=1\n" : "READY=1\n");
}

/* systemd 253 wants MONOTONIC_USEC= with RELOADING=1 to match the reload
 * to the request; 252 ignores it. */
void notify_reloading(void) {
        char msg[128];

        snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=Reloading the configuration",
                 now_usec(CLOCK_MONOTONIC));
        notify_send(msg);
}

void notify_stopping(void) {
        notify.stopping = true;
        notify_send("STOPPING=1\nSTATUS=Stopping: flushing the last replies");
}

/* Before the event loop is freed. */
void notify_done(void) {
        if (notify.ev_status)
                event_free(notify.ev_status);
        if (notify.ev_watchdog)
                event_free(notify.ev_watchdog);
        notify = (typeof(notify)) {};
}
