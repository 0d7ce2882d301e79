/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Durable audit appends per second: group commit (many appenders
 * outstanding, so records share an fdatasync) against one fdatasync per
 * record (one appender: each record waits for its own), in the same run,
 * in the same directory.  Also the raw write+fdatasync loop, the floor
 * for the second number.
 *
 *   bench-audit [-d DIR] [-t SECONDS] [-c OUTSTANDING] [-s REASON_BYTES]
 *
 * DIR defaults to $TMPDIR or /var/tmp; it must be on a real disk (on
 * tmpfs fdatasync costs nothing and the ratio means nothing). */

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/statfs.h>
#include <sys/stat.h>
#include <linux/magic.h>

#include "audit.h"
#include "kvmid.h"

typedef struct Run {
        struct event_base *base;
        Audit *audit;
        unsigned outstanding, max;
        uint64_t done;
        bool stopping;
        const char *reason;
} Run;

static uint64_t mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static const struct ucred peer = { .pid = 4242, .uid = 1000, .gid = 1000 };

static void refill(Run *run);

static void on_done(void *userdata, int r) {
        Run *run = userdata;

        if (r < 0) {
                fprintf(stderr, "bench-audit: append failed: %s\n", strerror(-r));
                exit(EXIT_FAILURE);
        }
        run->done++;
        run->outstanding--;
        refill(run);
        if (run->stopping && run->outstanding == 0)
                event_base_loopbreak(run->base);
}

static void refill(Run *run) {
        while (!run->stopping && run->outstanding < run->max) {
                AuditEvent ev = {
                        .kind = AUDIT_KIND_MAP_ALLOW,
                        .introspector = "bench",
                        .peer = &peer,
                        .target = "web1",
                        .uuid = "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e6f",
                        .rule = "/etc/kvmid/policy:12",
                        .reason = run->reason,
                };
                int r = audit_append(run->audit, &ev, on_done, run);
                if (r < 0) {
                        fprintf(stderr, "bench-audit: append: %s\n", strerror(-r));
                        exit(EXIT_FAILURE);
                }
                run->outstanding++;
        }
}

static void on_stop(evutil_socket_t fd, short what, void *userdata) {
        Run *run = userdata;

        run->stopping = true;
        if (run->outstanding == 0)
                event_base_loopbreak(run->base);
}

typedef struct Result {
        double per_sec;
        uint64_t records, syncs;
        double p50_us, p99_us;
} Result;

static Result run_writer(const char *dir, const char *name, unsigned outstanding, double seconds, const char *reason) {
        struct event_base *base = event_base_new();
        char *path = NULL;
        Run run = { .base = base, .max = outstanding, .reason = reason };
        struct timeval tv = { (time_t) seconds, (suseconds_t) ((seconds - (double) (time_t) seconds) * 1e6) };
        struct event *stop;
        AuditStats st;
        uint64_t t0, t1;
        Result res;
        int r;

        if (!base || asprintf(&path, "%s/%s", dir, name) < 0)
                exit(EXIT_FAILURE);
        (void) unlink(path);
        r = audit_open(base, &(AuditConfig) { .path = path, .sync = AUDIT_SYNC_ALWAYS }, &run.audit);
        if (r < 0) {
                fprintf(stderr, "bench-audit: open %s: %s\n", path, strerror(-r));
                exit(EXIT_FAILURE);
        }
        stop = evtimer_new(base, on_stop, &run);
        evtimer_add(stop, &tv);
        t0 = mono_ns();
        refill(&run);
        event_base_dispatch(base);
        t1 = mono_ns();
        audit_get_stats(run.audit, &st);
        res = (Result) {
                .per_sec = (double) run.done / ((double) (t1 - t0) / 1e9),
                .records = run.done,
                .syncs = st.syncs,
                .p50_us = (double) st.latency_p50_ns / 1e3,
                .p99_us = (double) st.latency_p99_ns / 1e3,
        };
        if (audit_close(run.audit) < 0)
                exit(EXIT_FAILURE);
        event_free(stop);
        event_base_free(base);
        (void) unlink(path);
        free(path);
        return res;
}

/* The floor: no writer, no thread, just write + fdatasync per record. */
static double run_raw(const char *dir, double seconds, size_t len) {
        char *path = NULL, *buf = malloc(len);
        uint64_t t0 = mono_ns(), end = t0 + (uint64_t) (seconds * 1e9), n = 0;
        int fd;

        if (!buf || asprintf(&path, "%s/bench-raw.log", dir) < 0)
                exit(EXIT_FAILURE);
        memset(buf, 'x', len);
        buf[len - 1] = '\n';
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                exit(EXIT_FAILURE);
        while (mono_ns() < end) {
                if (write(fd, buf, len) != (ssize_t) len || fdatasync(fd) < 0) {
                        perror("bench-audit: raw");
                        exit(EXIT_FAILURE);
                }
                n++;
        }
        close(fd);
        (void) unlink(path);
        free(path);
        free(buf);
        return (double) n / ((double) (mono_ns() - t0) / 1e9);
}

static const char *fs_name(const char *dir) {
        struct statfs s;

        if (statfs(dir, &s) < 0)
                return "?";
        switch ((unsigned long) s.f_type) {
        case EXT4_SUPER_MAGIC: return "ext4";
        case XFS_SUPER_MAGIC: return "xfs";
        case BTRFS_SUPER_MAGIC: return "btrfs";
        case TMPFS_MAGIC: return "tmpfs";
        case OVERLAYFS_SUPER_MAGIC: return "overlay";
        default: return "other";
        }
}

int main(int argc, char **argv) {
        const char *dir = getenv("TMPDIR");
        double seconds = 2.0;
        unsigned outstanding = 64;
        size_t reason_len = 64;
        char *tmp = NULL, *reason;
        Result one, group;
        double raw;
        int c;

        if (!dir || !dir[0])
                dir = "/var/tmp";
        while ((c = getopt(argc, argv, "d:t:c:s:h")) >= 0)
                switch (c) {
                case 'd': dir = optarg; break;
                case 't': seconds = atof(optarg); break;
                case 'c': outstanding = (unsigned) atoi(optarg); break;
                case 's': reason_len = (size_t) atol(optarg); break;
                default:
                        fprintf(stderr, "usage: bench-audit [-d DIR] [-t SECONDS] [-c OUTSTANDING] [-s REASON_BYTES]\n");
                        return c == 'h' ? EXIT_SUCCESS : EXIT_FAILURE;
                }
        if (seconds <= 0 || outstanding < 1 || reason_len > 60000) {
                fprintf(stderr, "bench-audit: bad arguments\n");
                return EXIT_FAILURE;
        }
        log_setup(LOG_LVL_WARNING);
        if (asprintf(&tmp, "%s/bench-audit-XXXXXX", dir) < 0 || !mkdtemp(tmp)) {
                fprintf(stderr, "bench-audit: cannot make a directory in %s: %m\n", dir);
                return EXIT_FAILURE;
        }
        reason = malloc(reason_len + 1);
        memset(reason, 'r', reason_len);
        reason[reason_len] = 0;

        printf("bench-audit: %s (%s), %.1f s per run, reason of %zu bytes\n", tmp, fs_name(tmp), seconds, reason_len);
        if (streq(fs_name(tmp), "tmpfs"))
                printf("bench-audit: warning: tmpfs makes fdatasync free; use -d on a disk\n");

        one = run_writer(tmp, "one.log", 1, seconds, reason);
        group = run_writer(tmp, "group.log", outstanding, seconds, reason);
        raw = run_raw(tmp, seconds, 300 + reason_len);

        printf("one fdatasync per record (1 outstanding):  %10.0f records/s  %8" PRIu64 " records %8" PRIu64
               " syncs  p50 %8.0f us  p99 %8.0f us\n", one.per_sec, one.records, one.syncs, one.p50_us, one.p99_us);
        printf("group commit (%3u outstanding):            %10.0f records/s  %8" PRIu64 " records %8" PRIu64
               " syncs  p50 %8.0f us  p99 %8.0f us  (%.1f records/sync)\n", outstanding, group.per_sec, group.records,
               group.syncs, group.p50_us, group.p99_us,
               group.syncs ? (double) group.records / (double) group.syncs : 0.0);
        printf("raw write+fdatasync loop (no writer):      %10.0f records/s\n", raw);
        printf("ratio group/one: %.1fx (target >= 20x)\n", one.per_sec > 0 ? group.per_sec / one.per_sec : 0.0);

        free(reason);
        (void) rmdir(tmp);
        free(tmp);
        return EXIT_SUCCESS;
}
