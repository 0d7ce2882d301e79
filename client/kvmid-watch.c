/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kvmid-watch: print a target's guest requests.  The example client of
 * libkvmid(3), built against nothing but the public header, and the tool
 * the integration tests drive.
 *
 * Output, one line each, flushed as it happens:
 *   authenticated NAME
 *   session ID TARGET
 *   token id=ID expires_usec=N token=HEX
 *   subscribed
 *   event target=T uuid=U seq=N vcpu=N mode=N missed=N time_usec=N rax=0x.. ... unreliable=r8,r9
 *   ended REASON
 * Exit status: 0 when kvmid ended the stream or --events were seen, 1 on
 * an error (one line on stderr), 2 on bad usage. */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libkvmid.h"

#define MAX_VCPUS 256

typedef struct Watch {
        unsigned long long want;        /* stop after this many events; 0: never */
        unsigned long long seen;
} Watch;

static int on_event(const KvmidGuestRequest *ev, void *userdata) {
        Watch *w = userdata;

        if (!ev) {
                printf("subscribed\n");
                return 0;
        }
        printf("event target=%s uuid=%s seq=%" PRIu64 " vcpu=%u mode=%u missed=%" PRIu64 " time_usec=%" PRIu64,
               ev->target, ev->uuid, ev->seq, ev->vcpu, ev->mode, ev->missed, ev->time_usec);
        for (unsigned i = 0; i < KVMID_REG_COUNT; i++)
                printf(" %s=0x%" PRIx64, kvmid_reg_name(i), ev->regs[i]);
        printf(" unreliable=");
        for (unsigned i = 0, first = 1; i < KVMID_REG_COUNT; i++)
                if (ev->unreliable & (1U << i)) {
                        printf("%s%s", first ? "" : ",", kvmid_reg_name(i));
                        first = 0;
                }
        printf("\n");
        return w->want > 0 && ++w->seen >= w->want;
}

static int fail(KvmidClient *c, const char *what, int r) {
        const char *msg = c ? kvmid_last_error(c) : "";

        fprintf(stderr, "kvmid-watch: %s: %s\n", what, *msg ? msg : strerror(-r));
        return 1;
}

static int parse_u64(const char *s, unsigned long long *ret) {
        char *end;

        if (!s || !*s || *s == '-')
                return -EINVAL;
        errno = 0;
        *ret = strtoull(s, &end, 0);
        return errno == 0 && *end == 0 ? 0 : -EINVAL;
}

static void usage(FILE *f) {
        fprintf(f,
                "Usage: kvmid-watch [OPTIONS] --name NAME --key-file PATH TARGET\n"
                "       kvmid-watch [OPTIONS] --name NAME --key-file PATH --auth-only\n"
                "Print the guest requests of TARGET as kvmid delivers them.\n\n"
                "  -s, --socket ADDRESS   io.kvmid.Introspector (path, unix:PATH or vsock:CID:PORT)\n"
                "  -n, --name NAME        introspector name\n"
                "  -k, --key-file PATH    its key (mode 0600)\n"
                "  -c, --vcpu N           only vCPU N (repeat for more)\n"
                "  -m, --map GPA:SIZE     mint a map token first and print it\n"
                "  -e, --events N         stop after N events\n"
                "  -t, --timeout SECONDS  wait this long for each reply (default 30)\n"
                "  -A, --auth-only        authenticate and exit\n"
                "  -h, --help\n");
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' },   { "name", required_argument, NULL, 'n' },
                { "key-file", required_argument, NULL, 'k' }, { "vcpu", required_argument, NULL, 'c' },
                { "map", required_argument, NULL, 'm' },      { "events", required_argument, NULL, 'e' },
                { "timeout", required_argument, NULL, 't' },  { "auth-only", no_argument, NULL, 'A' },
                { "help", no_argument, NULL, 'h' },           {},
        };
        const char *address = NULL, *name = NULL, *key_file = NULL, *map = NULL;
        unsigned vcpus[MAX_VCPUS];
        size_t n_vcpus = 0;
        unsigned long long x, gpa = 0, size = 0, timeout = 30;
        int auth_only = 0, opt, r;
        Watch w = {};
        KvmidClient *c = NULL;
        char *session = NULL;

        setvbuf(stdout, NULL, _IOLBF, 0);
        while ((opt = getopt_long(argc, argv, "s:n:k:c:m:e:t:Ah", options, NULL)) >= 0)
                switch (opt) {
                case 's': address = optarg; break;
                case 'n': name = optarg; break;
                case 'k': key_file = optarg; break;
                case 'A': auth_only = 1; break;
                case 'm': map = optarg; break;
                case 'c':
                        if (parse_u64(optarg, &x) < 0 || x > 4095 || n_vcpus == MAX_VCPUS) {
                                fprintf(stderr, "kvmid-watch: --vcpu takes a vCPU number, not \"%s\"\n", optarg);
                                return 2;
                        }
                        vcpus[n_vcpus++] = (unsigned) x;
                        break;
                case 'e':
                        if (parse_u64(optarg, &w.want) < 0) {
                                fprintf(stderr, "kvmid-watch: --events takes a count, not \"%s\"\n", optarg);
                                return 2;
                        }
                        break;
                case 't':
                        if (parse_u64(optarg, &timeout) < 0 || timeout > 86400) {
                                fprintf(stderr, "kvmid-watch: --timeout takes seconds, not \"%s\"\n", optarg);
                                return 2;
                        }
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        if (map) {
                char *colon = strchr(map, ':');
                if (colon)
                        *colon = 0;
                if (!colon || parse_u64(map, &gpa) < 0 || parse_u64(colon + 1, &size) < 0 || size == 0) {
                        fprintf(stderr, "kvmid-watch: --map takes GPA:SIZE\n");
                        return 2;
                }
        }
        if (!name || !key_file || optind != argc - !auth_only) {
                usage(stderr);
                return 2;
        }

        r = kvmid_connect(address, &c);
        if (r < 0)
                return fail(NULL, "cannot connect to kvmid", r);
        kvmid_set_timeout(c, (unsigned) timeout * 1000U);
        r = kvmid_authenticate_key_file(c, name, key_file);
        if (r < 0)
                return fail(c, "authentication", r);
        printf("authenticated %s\n", name);
        if (auth_only)
                goto done;

        r = kvmid_open_session(c, argv[optind], &session);
        if (r < 0)
                return fail(c, "cannot open a session", r);
        printf("session %s %s\n", session, argv[optind]);

        if (map) {
                KvmidToken t;

                r = kvmid_get_map_token(c, session, gpa, size, &t);
                if (r < 0)
                        return fail(c, "no map token", r);
                printf("token id=%s expires_usec=%" PRIu64 " token=%s\n", t.id, t.expires_usec, t.hex);
                memset(&t, 0, sizeof t);
        }

        r = kvmid_subscribe(c, session, vcpus, n_vcpus, on_event, &w);
        if (r < 0)
                return fail(c, "subscription", r);
        if (r == 0) {
                const char *reason = kvmid_last_error_parameter(c, "reason");
                printf("ended %s\n", reason ? reason : "(stream closed)");
        }
done:
        free(session);
        kvmid_client_free(c);
        return 0;
}
