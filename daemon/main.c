/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kvmid: command line, signals, and the one event loop. */

#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>

#include "kvmid.h"

#define DEFAULT_CONFIG SYSCONFDIR "/kvmid/kvmid.conf"
#define STOP_FLUSH_SEC 2

typedef struct Options {
        const char *config;
        bool config_explicit;
        const char *runtime_dir;
        const char *log_level;
        bool foreground, check_config;
} Options;

typedef struct Daemon {
        Options opts;
        struct event_base *base;
        Server *server;
        struct event *ev_term, *ev_int, *ev_hup, *ev_usr1;
} Daemon;

static void help(void) {
        printf("Usage: kvmid [OPTIONS]\n\n"
               "Broker for KVM virtual-machine introspection.\n\n"
               "  -c, --config FILE       configuration file (default %s)\n"
               "  -r, --runtime-dir DIR   directory for the sockets (default from config)\n"
               "  -f, --foreground        do not fork into the background\n"
               "  -l, --log-level LEVEL   debug, info, notice, warning, err\n"
               "      --check-config      check the configuration and exit\n"
               "  -V, --version           print the version and exit\n"
               "  -h, --help              print this help and exit\n\n"
               "See kvmid(8) and kvmid.conf(5).\n",
               DEFAULT_CONFIG);
}

/* Returns 1 to continue, 0 to exit successfully, <0 for a usage error. */
static int parse_argv(int argc, char **argv, Options *o) {
        enum { ARG_CHECK_CONFIG = 0x100 };
        static const struct option longopts[] = {
                { "config", required_argument, NULL, 'c' },
                { "runtime-dir", required_argument, NULL, 'r' },
                { "foreground", no_argument, NULL, 'f' },
                { "log-level", required_argument, NULL, 'l' },
                { "check-config", no_argument, NULL, ARG_CHECK_CONFIG },
                { "version", no_argument, NULL, 'V' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;

        o->config = DEFAULT_CONFIG;
        while ((c = getopt_long(argc, argv, "c:r:fl:Vh", longopts, NULL)) >= 0)
                switch (c) {
                case 'c':
                        o->config = optarg;
                        o->config_explicit = true;
                        break;
                case 'r':
                        if (optarg[0] != '/') {
                                fprintf(stderr, "kvmid: --runtime-dir needs an absolute path: \"%s\"\n", optarg);
                                return -EINVAL;
                        }
                        o->runtime_dir = optarg;
                        break;
                case 'f':
                        o->foreground = true;
                        break;
                case 'l':
                        if (log_level_from_string(optarg) < 0) {
                                fprintf(stderr, "kvmid: unknown log level \"%s\"\n", optarg);
                                return -EINVAL;
                        }
                        o->log_level = optarg;
                        break;
                case ARG_CHECK_CONFIG:
                        o->check_config = true;
                        break;
                case 'V':
                        printf("kvmid %s\n", PACKAGE_VERSION);
                        return 0;
                case 'h':
                        help();
                        return 0;
                default:
                        fprintf(stderr, "Try 'kvmid --help'.\n");
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "kvmid: unexpected argument \"%s\"\n", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

/* The default file may be absent (built-in defaults); a named one may not. */
static int load_config(const Options *o, Config **ret) {
        _cleanup_free_ char *error = NULL;
        const char *path = o->config;
        Config *c;
        int r;

        if (!o->config_explicit && access(path, F_OK) < 0 && errno == ENOENT)
                path = NULL;
        r = config_load(path, o->runtime_dir, &c, &error);
        if (r < 0)
                return log_error_errno(r, "%s", error ?: "cannot load the configuration");
        if (o->log_level)
                c->log_level = log_level_from_string(o->log_level);
        *ret = c;
        return 0;
}

static void on_reload(evutil_socket_t sig, short what, void *userdata) {
        Daemon *d = userdata;
        Config *c;

        notify_reloading();
        if (load_config(&d->opts, &c) < 0)
                log_warning("configuration reload failed, keeping the previous configuration");
        else {
                server_apply_config(d->server, c);
                log_info("configuration reloaded%s%s", c->path ? " from " : "", c->path ?: "");
        }
        (void) authz_reload(d->server, NULL);
        notify_ready(d->server);
}

static void on_rotate(evutil_socket_t sig, short what, void *userdata) {
        Daemon *d = userdata;
        int r = admin_rotate_audit_start(d->server, NULL);

        if (r < 0)
                log_warning_errno(r, "SIGUSR1: cannot rotate the audit log: %m");
}

static void on_stop_timeout(evutil_socket_t fd, short what, void *userdata) {
        Daemon *d = userdata;

        log_warning("peers did not take their last replies within %ds, closing anyway", STOP_FLUSH_SEC);
        event_base_loopexit(d->base, NULL);
}

static void on_terminate(evutil_socket_t sig, short what, void *userdata) {
        Daemon *d = userdata;
        struct timeval tv = { .tv_sec = STOP_FLUSH_SEC };

        if (d->server->stopping)
                return;
        log_info("received %s, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
        notify_stopping();
        event_del(d->ev_hup);
        event_del(d->ev_usr1);
        server_stop(d->server);
        event_base_once(d->base, -1, EV_TIMEOUT, on_stop_timeout, d, &tv);
}

static int daemon_setup(Daemon *d, Config *config) {
        static const InterfaceTable *const tables[] = {
                &service_interface, &kvmid_errors_interface, &admin_interface, &introspector_interface,
                &hypervisor_interface,
        };
        const char *v;
        int r;

        /* Two priorities: KVMI channels first (a vCPU waits on every event),
         * everything else after; and while the lower priority runs, look
         * for new KVMI input every few callbacks, so flushing many
         * subscribers never delays an ack for long. */
        struct event_config *cfg = event_config_new();
        if (!cfg)
                return log_error_errno(ENOMEM, "cannot create the event loop");
        (void) event_config_set_max_dispatch_interval(cfg, NULL, 8, 1);
        d->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
        if (!d->base || event_base_priority_init(d->base, EVENT_PRIORITIES) < 0)
                return log_error_errno(ENOMEM, "cannot create the event loop");
        r = server_new(d->base, config, &d->server);
        if (r < 0) {
                config_free(config);
                return log_error_errno(r, "cannot set up the server: %m");
        }
        v = getenv("KVMID_VALIDATE_REPLIES");
        dispatch_set_validate_replies(d->server->dispatch, v && streq(v, "1"));
        for (size_t i = 0; i < ELEMENTSOF(tables); i++) {
                r = dispatch_add(d->server->dispatch, tables[i], d->server);
                if (r < 0)
                        return r;
        }
        if (config->certification) {
                r = certification_new(&d->server->certification);
                if (r < 0)
                        return log_error_errno(r, "cannot set up certification: %m");
                r = dispatch_add(d->server->dispatch, &certification_interface, d->server);
                if (r < 0)
                        return r;
                log_warning("serving org.varlink.certification on the admin listener (testing only)");
        }

        d->ev_term = evsignal_new(d->base, SIGTERM, on_terminate, d);
        d->ev_int = evsignal_new(d->base, SIGINT, on_terminate, d);
        d->ev_hup = evsignal_new(d->base, SIGHUP, on_reload, d);
        d->ev_usr1 = evsignal_new(d->base, SIGUSR1, on_rotate, d);
        if (!d->ev_term || !d->ev_int || !d->ev_hup || !d->ev_usr1)
                return log_error_errno(ENOMEM, "cannot watch signals");
        event_add(d->ev_term, NULL);
        event_add(d->ev_int, NULL);
        event_add(d->ev_hup, NULL);
        event_add(d->ev_usr1, NULL);

        return server_start(d->server);
}

static void daemon_done(Daemon *d) {
        notify_done();
        if (d->ev_term)
                event_free(d->ev_term);
        if (d->ev_int)
                event_free(d->ev_int);
        if (d->ev_hup)
                event_free(d->ev_hup);
        if (d->ev_usr1)
                event_free(d->ev_usr1);
        server_free(d->server);
        if (d->base)
                event_base_free(d->base);
}

/* Classic daemon start for hand use: the parent exits only once the child
 * is serving (0) or has failed (1), so "kvmid && kvmictl status" works. */
static int fork_background(int *ret_ready_fd) {
        int p[2];
        pid_t pid;
        char c;

        if (pipe2(p, O_CLOEXEC) < 0)
                return log_error_errno(errno, "pipe: %m");
        pid = fork();
        if (pid < 0)
                return log_error_errno(errno, "fork: %m");
        if (pid == 0) {
                close(p[0]);
                (void) setsid();
                *ret_ready_fd = p[1];
                return 0;
        }
        close(p[1]);
        if (read(p[0], &c, 1) == 1)
                _exit(EXIT_SUCCESS);
        _exit(EXIT_FAILURE);
}

int main(int argc, char **argv) {
        Daemon d = {};
        Config *config;
        int r, ready_fd = -EBADF;

        r = parse_argv(argc, argv, &d.opts);
        if (r <= 0)
                return r < 0 ? 2 : EXIT_SUCCESS;
        log_setup(LOG_LVL_INFO);
        if (load_config(&d.opts, &config) < 0)
                return EXIT_FAILURE;
        log_set_max_level(config->log_level);
        if (d.opts.check_config) {
                printf("%s: OK\n", config->path ?: "built-in defaults");
                config_free(config);
                return EXIT_SUCCESS;
        }
        (void) signal(SIGPIPE, SIG_IGN);
        /* Over RLIMIT_FSIZE the audit log must fail with EFBIG (and deny), not kill us. */
        (void) signal(SIGXFSZ, SIG_IGN);
        if (!d.opts.foreground && !getenv("NOTIFY_SOCKET") && fork_background(&ready_fd) < 0) {
                config_free(config);
                return EXIT_FAILURE;
        }

        r = daemon_setup(&d, config);
        if (r < 0) {
                daemon_done(&d);
                return EXIT_FAILURE;
        }
        log_info("kvmid %s ready", PACKAGE_VERSION);
        notify_ready(d.server);
        if (ready_fd >= 0) {
                int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
                (void) write(ready_fd, "R", 1);
                ready_fd = safe_close(ready_fd);
                if (devnull >= 0) {
                        (void) dup2(devnull, STDIN_FILENO);
                        (void) dup2(devnull, STDOUT_FILENO);
                        /* Whoever started us may wait for EOF on stderr. */
                        log_to_journal();
                        (void) dup2(devnull, STDERR_FILENO);
                        close(devnull);
                }
        }

        event_base_dispatch(d.base);
        /* Freeing the signal events restores the default actions: a second
         * SIGTERM during teardown must not turn a clean exit into a kill. */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        (void) sigprocmask(SIG_BLOCK, &mask, NULL);
        daemon_done(&d);
        log_info("stopped");
        return EXIT_SUCCESS;
}
