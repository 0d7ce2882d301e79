/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Listeners: bind (or adopt from systemd), accept with connection limits,
 * and the list of live connections. */

#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <linux/vm_sockets.h>
#include <systemd/sd-daemon.h>

#include "kvmid.h"

/* How long to stop accepting after EMFILE/ENFILE: long enough for
 * connections to go away, short enough to be invisible to clients. */
#define ACCEPT_PAUSE_USEC 100000

struct Listener {
        Server *server;
        Role role;
        bool vsock;                  /* peers are identified by CID, not SO_PEERCRED */
        int fd;
        char *path;                  /* unlinked at stop if we bound it */
        bool owned;
        struct event *ev_accept, *ev_resume;
        uint64_t pause_logged_usec;  /* out of descriptors: said at most every 10 s */
        unsigned pauses_unsaid;
};

typedef struct ServerUid {
        uid_t uid;
        unsigned count;
        struct ServerUid *next;
} ServerUid;

uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

static size_t role_index(Role role) {
        for (size_t i = 0; i < N_ROLES; i++)
                if ((Role) (1U << i) == role)
                        return i;
        return 0;
}

static ServerUid **uid_slot(Server *s, uid_t uid) {
        ServerUid **p;

        for (p = &s->uids; *p; p = &(*p)->next)
                if ((*p)->uid == uid)
                        break;
        return p;
}

static int uid_acquire(Server *s, uid_t uid) {
        ServerUid **p = uid_slot(s, uid);

        if (!*p) {
                *p = calloc(1, sizeof **p);
                if (!*p)
                        return -ENOMEM;
                (*p)->uid = uid;
        }
        if ((*p)->count >= s->config->max_connections_per_uid)
                return -EUSERS;
        (*p)->count++;
        return 0;
}

static void uid_release(Server *s, uid_t uid) {
        ServerUid **p = uid_slot(s, uid), *u = *p;

        if (!u)
                return;
        if (--u->count == 0) {
                *p = u->next;
                free(u);
        }
}

static void server_on_reap(evutil_socket_t fd, short what, void *userdata) {
        Server *s = userdata;

        while (s->graveyard) {
                Conn *c = s->graveyard;
                s->graveyard = c->next;
                conn_free(c);
        }
        if (s->stopping && !s->conns)
                event_base_loopexit(s->base, NULL);
}

void server_conn_closed(Server *s, Conn *c) {
        if (c->prev)
                c->prev->next = c->next;
        else
                s->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = NULL;
        c->next = s->graveyard;
        s->graveyard = c;

        s->stats[role_index(c->role)].active--;
        s->n_connections--;
        if (c->vsock_cid == 0)
                uid_release(s, c->cred.uid);
        event_active(s->ev_reap, 0, 0);
}

/* A refused peer still gets a varlink error naming the limit, written
 * best-effort on the fresh socket (its buffer is empty, so it fits). */
static void refuse(int fd, const char *limit, unsigned max) {
        char buf[256];
        int n = snprintf(buf, sizeof buf,
                         "{\"parameters\":{\"limit\":\"%s\",\"max\":%u},\"error\":\"io.kvmid.LimitExceeded\"}",
                         limit, max);

        (void) send(fd, buf, (size_t) n + 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void listener_on_resume(evutil_socket_t fd, short what, void *userdata) {
        Listener *l = userdata;

        event_add(l->ev_accept, NULL);
}

static void listener_on_accept(evutil_socket_t lfd, short what, void *userdata) {
        Listener *l = userdata;
        Server *s = l->server;
        ListenerStats *st = &s->stats[role_index(l->role)];
        const ListenerConfig *lc = config_listener(s->config, l->role);

        /* Bounded batch so one busy listener cannot starve the loop. */
        for (int i = 0; i < 64; i++) {
                struct sockaddr_vm vm = {};
                socklen_t vmlen = sizeof vm;
                _cleanup_close_ int fd = accept4(lfd, l->vsock ? (struct sockaddr *) &vm : NULL, l->vsock ? &vmlen : NULL,
                                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
                struct ucred cred = { .pid = 0, .uid = (uid_t) -1, .gid = (gid_t) -1 };
                socklen_t len = sizeof cred;
                Conn *c;
                int r;

                if (fd < 0) {
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                                struct timeval tv = { .tv_usec = ACCEPT_PAUSE_USEC };
                                uint64_t now = now_usec(CLOCK_MONOTONIC);
                                if (l->pause_logged_usec == 0 || now - l->pause_logged_usec >= 10000000ULL) {
                                        log_warning_errno(errno, "%s listener: cannot accept (%m), pausing for %ums"
                                                          " (%u more pauses since the last message)",
                                                          role_to_string(l->role), ACCEPT_PAUSE_USEC / 1000,
                                                          l->pauses_unsaid);
                                        l->pause_logged_usec = now;
                                        l->pauses_unsaid = 0;
                                } else
                                        l->pauses_unsaid++;
                                event_del(l->ev_accept);
                                evtimer_add(l->ev_resume, &tv);
                        } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                log_warning_errno(errno, "%s listener: accept failed: %m", role_to_string(l->role));
                        return;
                }
                if (!l->vsock && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                        log_warning_errno(errno, "%s listener: SO_PEERCRED failed: %m", role_to_string(l->role));
                        st->rejected++;
                        continue;
                }
                if (s->stopping) {
                        st->rejected++;
                        continue;
                }
                if (s->n_connections >= s->config->max_connections) {
                        log_warning("%s listener: %u connections open, refusing uid %u",
                                    role_to_string(l->role), s->n_connections, (unsigned) cred.uid);
                        refuse(fd, "max-connections", s->config->max_connections);
                        st->rejected++;
                        continue;
                }
                /* vsock peers are VMs: max-connections bounds them, not uids. */
                r = l->vsock ? 0 : uid_acquire(s, cred.uid);
                if (r < 0) {
                        if (r == -EUSERS) {
                                log_warning("%s listener: uid %u has %u connections, refusing",
                                            role_to_string(l->role), (unsigned) cred.uid,
                                            s->config->max_connections_per_uid);
                                refuse(fd, "max-connections-per-uid", s->config->max_connections_per_uid);
                        }
                        st->rejected++;
                        continue;
                }
                r = conn_new(s, l, fd, &cred, lc, st, &c);
                if (r < 0) {
                        if (!l->vsock)
                                uid_release(s, cred.uid);
                        st->rejected++;
                        continue;
                }
                TAKE_FD(fd);
                c->vsock_cid = l->vsock ? vm.svm_cid : 0;
                c->id = ++s->next_conn_id;
                c->next = s->conns;
                if (s->conns)
                        s->conns->prev = c;
                s->conns = c;
                s->n_connections++;
                st->accepted++;
                st->active++;
                log_debug("%s listener: connection %" PRIu64 " from uid %u pid %d", role_to_string(l->role),
                          c->id, (unsigned) cred.uid, (int) cred.pid);
        }
}

static Listener *listener_free(Listener *l) {
        if (!l)
                return NULL;
        if (l->ev_accept)
                event_free(l->ev_accept);
        if (l->ev_resume)
                event_free(l->ev_resume);
        if (l->owned && l->path)
                (void) unlink(l->path);
        safe_close(l->fd);
        free(l->path);
        free(l);
        return NULL;
}

static int mkdir_parents(const char *path) {
        _cleanup_free_ char *p = strdup(path);
        char *slash;

        if (!p)
                return -ENOMEM;
        slash = strrchr(p, '/');
        if (!slash || slash == p)
                return 0;
        *slash = '\0';
        for (char *q = p + 1; *q; q++) {
                if (*q != '/')
                        continue;
                *q = '\0';
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        return negative_errno();
                *q = '/';
        }
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

/* A socket file that nobody answers on is left over from a crash; one that
 * answers belongs to a running instance, which we must not steal from. */
static int remove_stale_socket(const struct sockaddr_un *sa, socklen_t salen) {
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct stat st;

        if (lstat(sa->sun_path, &st) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST;
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (const struct sockaddr *) sa, salen) == 0)
                return -EADDRINUSE;
        if (unlink(sa->sun_path) < 0 && errno != ENOENT)
                return negative_errno();
        return 0;
}

int server_bind_unix(const char *name, const char *path, mode_t mode, const char *group, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        socklen_t salen;
        int r;

        if (strlen(path) >= sizeof sa.sun_path)
                return log_error_errno(ENAMETOOLONG, "%s listener: socket path \"%s\" is too long",
                                       name, path);
        strcpy(sa.sun_path, path);
        salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + strlen(sa.sun_path) + 1);

        r = mkdir_parents(path);
        if (r < 0)
                return log_error_errno(r, "%s listener: cannot create the directory of \"%s\": %m",
                                       name, path);
        r = remove_stale_socket(&sa, salen);
        if (r == -EADDRINUSE)
                return log_error_errno(r, "%s listener: \"%s\" is in use by a running process (another kvmid?)",
                                       name, path);
        if (r < 0)
                return log_error_errno(r, "%s listener: cannot replace \"%s\": %m", name, path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return log_error_errno(errno, "%s listener: socket() failed: %m", name);
        if (bind(fd, (struct sockaddr *) &sa, salen) < 0)
                return log_error_errno(errno, "%s listener: cannot bind \"%s\": %m", name, path);
        /* Mode and group are the access control of admin and hypervisor. */
        if (chmod(path, mode) < 0) {
                r = log_error_errno(errno, "%s listener: chmod \"%s\": %m", name, path);
                (void) unlink(path);
                return r;
        }
        if (group && *group) {
                struct group *g = getgrnam(group);
                if (!g)
                        log_warning("%s listener: group \"%s\" does not exist, \"%s\" keeps group %u",
                                    name, group, path, (unsigned) getegid());
                else if (chown(path, (uid_t) -1, g->gr_gid) < 0)
                        log_warning_errno(errno, "%s listener: cannot give \"%s\" to group \"%s\": %m",
                                          name, path, group);
        }
        if (listen(fd, SOMAXCONN) < 0) {
                r = log_error_errno(errno, "%s listener: listen failed: %m", name);
                (void) unlink(path);
                return r;
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int listener_bind(const ListenerConfig *lc, int *ret_fd) {
        return server_bind_unix(lc->name, lc->socket_path, lc->mode, lc->group, ret_fd);
}

static int listener_new(Server *s, const ListenerConfig *lc, int fd, bool owned, Listener **ret) {
        Listener *l = calloc(1, sizeof *l);

        if (!l)
                return -ENOMEM;
        l->server = s;
        l->role = lc->role;
        l->fd = fd;
        l->owned = owned;
        l->path = strdup(lc->socket_path);
        l->ev_accept = event_new(s->base, fd, EV_READ | EV_PERSIST, listener_on_accept, l);
        l->ev_resume = evtimer_new(s->base, listener_on_resume, l);
        if (!l->path || !l->ev_accept || !l->ev_resume) {
                l->fd = -EBADF;
                listener_free(l);
                return -ENOMEM;
        }
        (void) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        event_add(l->ev_accept, NULL);
        *ret = l;
        return 0;
}

int server_new(struct event_base *base, Config *config, Server **ret) {
        _cleanup_free_ Server *s = calloc(1, sizeof *s);
        int r;

        if (!s)
                return -ENOMEM;
        s->base = base;
        s->config = config;
        s->start_usec = now_usec(CLOCK_MONOTONIC);
        s->kvmi_fd_passed = -EBADF;
        s->ev_reap = event_new(base, -1, 0, server_on_reap, s);
        if (!s->ev_reap)
                return -ENOMEM;
        r = dispatch_new(&s->dispatch);
        if (r < 0) {
                event_free(s->ev_reap);
                return r;
        }
        r = introspector_state_new(&s->introspectors);
        if (r >= 0)
                r = token_table_new(s, &s->tokens);
        if (r >= 0)
                r = hypervisor_new(s);
        if (r < 0) {
                introspector_state_free(s->introspectors);
                token_table_free(s->tokens);
                dispatch_free(s->dispatch);
                event_free(s->ev_reap);
                return r;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

Server *server_free(Server *s) {
        if (!s)
                return NULL;
        while (s->conns)
                conn_close(s->conns);
        server_on_reap(-1, 0, s);
        for (size_t i = 0; i < N_ROLES; i++)
                listener_free(s->listeners[i]);
        listener_free(s->vsock_listener);
        while (s->uids) {
                ServerUid *u = s->uids;
                s->uids = u->next;
                free(u);
        }
        libvirt_stop(s);
        channel_server_stop(s);
        while (s->sessions)
                session_end(s->sessions, "kvmid is stopping");
        /* The last records, and the callbacks of decisions still waiting
         * for the disk, while what they refer to still exists. */
        if (s->start_recorded)
                server_audit(s, &(AuditEvent) { .kind = AUDIT_KIND_DAEMON_STOP,
                                                .reason = s->stopping ? "stopping" : "start failed" });
        if (s->audit) {
                int r = audit_close(s->audit);
                if (r < 0)
                        log_error_errno(r, "audit log: last records could not be written: %m");
                s->audit = NULL;
        }
        hypervisor_free(s);
        s->tokens = token_table_free(s->tokens);
        domain_registry_free(s);
        introspector_state_free(s->introspectors);
        policy_unref(s->policy);

        safe_close(s->kvmi_fd_passed);
        event_free(s->ev_reap);
        if (s->ev_flush_tick)
                event_free(s->ev_flush_tick);
        dispatch_free(s->dispatch);
        certification_free(s->certification);
        config_free(s->config);
        free(s);
        return NULL;
}

void server_audit(Server *s, const AuditEvent *ev) {
        int r;

        if (!s->audit)
                return;
        r = audit_emit(s->audit, ev);
        if (r < 0)
                log_warning_errno(r, "audit: cannot record %s: %m", audit_kind_to_string(ev->kind));
}

/* Tools inside introspector VMs reach the Introspector interface over
 * vsock; no vsock in this kernel is said once, and kvmid carries on. */
static int server_start_vsock(Server *s) {
        const ListenerConfig *lc = config_listener(s->config, ROLE_INTROSPECTOR);
        struct sockaddr_vm vm = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = lc->vsock_port };
        _cleanup_close_ int fd = -EBADF;
        Listener *l;
        int r;

        if (lc->vsock_port == 0)
                return 0;
        fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &vm, sizeof vm) < 0 || listen(fd, SOMAXCONN) < 0) {
                r = negative_errno();
                if (r == -EAFNOSUPPORT || r == -ENODEV)
                        log_notice("introspector vsock listener on port %u is off: this kernel has no AF_VSOCK",
                                   lc->vsock_port);
                else
                        log_warning_errno(r, "introspector vsock listener on port %u is off: %m", lc->vsock_port);
                return 0;
        }
        r = listener_new(s, lc, fd, false, &l);
        if (r < 0)
                return r;
        TAKE_FD(fd);
        l->vsock = true;
        s->vsock_listener = l;
        log_info("introspector listener on vsock port %u", lc->vsock_port);
        return 0;
}

static int server_open_audit(Server *s) {
        const AuditFileConfig *ac = &s->config->audit;
        AuditConfig cfg = {
                .path = ac->file,
                .sync = ac->sync,
                .interval_msec = ac->interval_msec,
                .journal = true,
        };
        _cleanup_free_ char *dir = strdup(ac->file);
        char *slash;
        int r;

        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (slash && slash != dir) {
                *slash = '\0';
                if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                        return log_error_errno(errno, "audit log: cannot create \"%s\": %m", dir);
        }
        r = audit_open(s->base, &cfg, &s->audit);
        if (r < 0)
                return log_error_errno(r, "audit log \"%s\": cannot open: %m", ac->file);
        log_info("audit log \"%s\" (sync=%s), chain at seq %" PRIu64, ac->file, audit_sync_mode_to_string(ac->sync),
                 audit_last_seq(s->audit));
        return 0;
}

/* Take what systemd passed (FileDescriptorName= admin, introspector,
 * hypervisor), bind the rest ourselves. */
int server_start(Server *s) {
        char **names = NULL;
        int n, r;

        /* Decisions are only made with somewhere to record them. */
        r = server_open_audit(s);
        if (r < 0)
                return r;
        /* First of this run's records (the policy load, domains coming up
         * follow); daemon-stop is the last, in server_free(). */
        _cleanup_json_ struct json_object *data = json_object_new_object();
        if (data) {
                json_object_object_add(data, "version", json_object_new_string(PACKAGE_VERSION));
                json_object_object_add(data, "pid", json_object_new_int64(getpid()));
                if (s->config->path)
                        json_object_object_add(data, "config", json_object_new_string(s->config->path));
        }
        server_audit(s, &(AuditEvent) { .kind = AUDIT_KIND_DAEMON_START, .data = data });
        s->start_recorded = true;

        n = sd_listen_fds_with_names(true, &names);
        if (n < 0)
                log_warning_errno(n, "cannot read socket-activation fds: %m");
        for (int i = 0; i < MAX(n, 0); i++) {
                int fd = SD_LISTEN_FDS_START + i;
                bool used = false;

                for (size_t k = 0; k < N_ROLES; k++) {
                        ListenerConfig *lc = &s->config->listeners[k];
                        if (!names || !streq(names[i], lc->name) || s->listeners[k])
                                continue;
                        if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0) {
                                log_error("socket-activation fd \"%s\" is not a listening Unix stream socket", names[i]);
                                break;
                        }
                        r = listener_new(s, lc, fd, false, &s->listeners[k]);
                        if (r < 0)
                                return r;
                        log_info("%s listener: using socket passed by systemd", lc->name);
                        used = true;
                        break;
                }
                if (!used && names && streq(names[i], "kvmi") && s->kvmi_fd_passed < 0) {
                        if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) > 0) {
                                s->kvmi_fd_passed = fd;
                                used = true;
                        } else
                                log_error("socket-activation fd \"kvmi\" is not a listening stream socket");
                }
                if (!used) {
                        log_warning("ignoring socket-activation fd \"%s\"", names ? names[i] : "?");
                        safe_close(fd);
                }
        }
        if (names) {
                for (int i = 0; i < n; i++)
                        free(names[i]);
                free(names);
        }

        for (size_t k = 0; k < N_ROLES; k++) {
                ListenerConfig *lc = &s->config->listeners[k];
                int fd;

                if (s->listeners[k])
                        continue;
                r = listener_bind(lc, &fd);
                if (r < 0)
                        return r;
                r = listener_new(s, lc, fd, true, &s->listeners[k]);
                if (r < 0) {
                        (void) unlink(lc->socket_path);
                        safe_close(fd);
                        return r;
                }
                log_info("%s listener on \"%s\"", lc->name, lc->socket_path);
        }
        r = server_start_vsock(s);
        if (r < 0)
                return r;
        r = domain_registry_load(s, s->config);
        if (r < 0)
                return log_error_errno(r, "cannot set up the domain registry: %m");
        r = authz_start(s);
        if (r < 0)
                return r;
        r = channel_server_start(s);
        if (r < 0)
                return r;
        r = libvirt_start(s); /* never fails on an unreachable libvirt: retries */
        if (r < 0)
                return r;
        return 0;
}

void server_apply_config(Server *s, Config *c) {
        for (size_t k = 0; k < N_ROLES; k++)
                if (!streq(s->config->listeners[k].socket_path, c->listeners[k].socket_path))
                        log_warning("%s listener: socket path change to \"%s\" needs a restart, still on \"%s\"",
                                    c->listeners[k].name, c->listeners[k].socket_path,
                                    s->config->listeners[k].socket_path);
        if (!streq(s->config->audit.file, c->audit.file) || s->config->audit.sync != c->audit.sync)
                log_warning("audit log: a new file or sync mode needs a restart, still \"%s\" sync=%s",
                            s->config->audit.file, audit_sync_mode_to_string(s->config->audit.sync));
        if (!streq(s->config->kvmi.socket_path, c->kvmi.socket_path))
                log_warning("KVMI listener: socket path change to \"%s\" needs a restart, still on \"%s\"",
                            c->kvmi.socket_path, s->config->kvmi.socket_path);
        /* Domains gone from the file go down as a stopped VM does, while
         * the old identities still name the introspectors bound to them. */
        domain_registry_retire(s, c);
        if (domain_registry_apply(s, c) < 0)
                log_warning("domain registry: out of memory applying the new configuration");
        log_set_max_level(c->log_level);
        Config *old = s->config;
        s->config = c;
        introspector_apply_config(s, old);
        config_free(old);
}

void server_stop(Server *s) {
        s->stopping = true;
        libvirt_stop(s);
        channel_server_stop(s);
        for (size_t k = 0; k < N_ROLES; k++)
                s->listeners[k] = listener_free(s->listeners[k]);
        s->vsock_listener = listener_free(s->vsock_listener);
        for (Conn *c = s->conns, *next; c; c = next) {
                next = c->next;
                conn_begin_shutdown(c);
        }
        event_active(s->ev_reap, 0, 0);
}

const char *server_listener_path(const Server *s, Role role) {
        const Listener *l = s->listeners[role_index(role)];

        return l ? l->path : config_listener(s->config, role)->socket_path;
}
