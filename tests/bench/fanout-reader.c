/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The C half of tests/bench/bench-fanout.py: fast subscribers, and the raw
 * baselines kvmid's fan-out is compared with.
 *
 *   fanout-reader read COUNT [--capture FILE] [--timeout SEC] [--idle-ms MS] FD...
 *       Read NUL-framed varlink messages from the inherited stream sockets
 *       FD... (one epoll loop, one read per ready fd) until every one has
 *       delivered COUNT messages, or (--idle-ms) nothing came for MS once
 *       the stream started: a daemon that dropped events for a slow
 *       reader.  --capture: the first complete message of the first fd,
 *       NUL included, is written to FILE.
 *
 *   fanout-reader baseline write|writev READERS COUNT MSGFILE [BATCH]
 *       A writer pushes COUNT copies of MSGFILE's bytes to each of READERS
 *       socketpair readers (a forked child running the same read loop):
 *       "write" does one write() per message per reader; "writev" queues
 *       per reader and flushes BATCH (default 64) messages per writev().
 *       The writer's CPU is measured the way bench-fanout.py measures
 *       kvmid's: /proc/self/schedstat, ns on CPU.
 *
 * Both print one JSON object on stdout; exit 0 when every reader got
 * COUNT messages. */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF        (256U * 1024U)
#define MAX_FDS         4096
#define DEFAULT_BATCH   64U     /* kvmid's IOV_MAX_BATCH */

typedef struct Reader {
        int fd;
        uint64_t count;
        bool eof;
} Reader;

typedef struct ReadResult {
        uint64_t messages, min, max;
        uint64_t first_ns, last_ns, cpu_ns;
        unsigned eofs;
        bool timed_out;
} ReadResult;

static bool streq_arg(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static uint64_t mono_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

/* ns this thread has run: the first field of /proc/self/schedstat. */
static uint64_t cpu_ns(void) {
        char buf[128];
        unsigned long long v = 0;
        ssize_t n;
        int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                fd = open("/proc/self/schedstat", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
                return 0;
        buf[n] = '\0';
        if (sscanf(buf, "%llu", &v) != 1)
                return 0;
        return (uint64_t) v;
}

static int parse_u64(const char *s, uint64_t *ret) {
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s || *end)
                return -EINVAL;
        *ret = (uint64_t) v;
        return 0;
}

static size_t count_nuls(const char *p, size_t n) {
        const char *end = p + n;
        size_t k = 0;

        while ((p = memchr(p, '\0', (size_t) (end - p)))) {
                k++;
                p++;
        }
        return k;
}

/* The read loop both modes share. */
static int read_loop(Reader *r, size_t n, uint64_t want, const char *capture, unsigned timeout_sec,
                     unsigned idle_ms, ReadResult *res) {
        static char buf[READ_BUF];
        struct epoll_event evs[64];
        size_t done = 0, open_fds = n;
        uint64_t deadline = mono_ns() + (uint64_t) timeout_sec * 1000000000ULL;
        FILE *cap = NULL;
        bool captured = capture == NULL;
        int ep = epoll_create1(EPOLL_CLOEXEC);

        *res = (ReadResult) {};
        if (ep < 0)
                return -errno;
        if (capture && !(cap = fopen(capture, "we"))) {
                close(ep);
                return -errno;
        }
        for (size_t i = 0; i < n; i++) {
                struct epoll_event ev = { .events = EPOLLIN, .data.u64 = i };
                if (epoll_ctl(ep, EPOLL_CTL_ADD, r[i].fd, &ev) < 0) {
                        close(ep);
                        if (cap)
                                fclose(cap);
                        return -errno;
                }
        }
        while (done < n && open_fds > 0) {
                uint64_t now = mono_ns();
                int k;

                if (now >= deadline) {
                        res->timed_out = true;
                        break;
                }
                /* Events the daemon dropped (missed) never come: once the
                 * stream has started, a silence of idle_ms ends the run. */
                if (idle_ms > 0 && res->last_ns > 0 && now - res->last_ns >= (uint64_t) idle_ms * 1000000ULL) {
                        res->timed_out = true;
                        break;
                }
                k = epoll_wait(ep, evs, (int) (sizeof evs / sizeof evs[0]),
                               idle_ms > 0 && res->last_ns > 0 ? (int) idle_ms
                                                               : (int) ((deadline - now) / 1000000ULL) + 1);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                for (int j = 0; j < k; j++) {
                        Reader *x = &r[evs[j].data.u64];
                        ssize_t got = read(x->fd, buf, sizeof buf);
                        size_t m;

                        if (got < 0 && (errno == EAGAIN || errno == EINTR))
                                continue;
                        if (got <= 0) {
                                x->eof = true;
                                (void) epoll_ctl(ep, EPOLL_CTL_DEL, x->fd, NULL);
                                open_fds--;
                                res->eofs++;
                                if (x->count < want)
                                        done++;         /* it will never finish: stop waiting for it */
                                continue;
                        }
                        if (!captured && x == &r[0]) {
                                const char *nul = memchr(buf, '\0', (size_t) got);
                                size_t len = nul ? (size_t) (nul - buf) + 1 : (size_t) got;
                                if (fwrite(buf, 1, len, cap) != len)
                                        captured = true;
                                if (nul)
                                        captured = true;
                        }
                        m = count_nuls(buf, (size_t) got);
                        if (m == 0)
                                continue;
                        res->last_ns = mono_ns();
                        if (res->first_ns == 0)
                                res->first_ns = res->last_ns;
                        if (x->count < want && x->count + m >= want)
                                done++;
                        x->count += m;
                }
        }
        close(ep);
        if (cap && fclose(cap) != 0)
                return -EIO;
        res->min = UINT64_MAX;
        for (size_t i = 0; i < n; i++) {
                res->messages += r[i].count;
                if (r[i].count < res->min)
                        res->min = r[i].count;
                if (r[i].count > res->max)
                        res->max = r[i].count;
        }
        if (n == 0)
                res->min = 0;
        res->cpu_ns = cpu_ns();
        return 0;
}

static void print_read(const ReadResult *res, size_t n) {
        printf("{\"readers\":%zu,\"messages\":%" PRIu64 ",\"min\":%" PRIu64 ",\"max\":%" PRIu64
               ",\"first_ns\":%" PRIu64 ",\"last_ns\":%" PRIu64 ",\"reader_cpu_ns\":%" PRIu64
               ",\"eofs\":%u,\"timed_out\":%s}\n",
               n, res->messages, res->min, res->max, res->first_ns, res->last_ns, res->cpu_ns, res->eofs,
               res->timed_out ? "true" : "false");
}

static int usage(void) {
        fputs("usage: fanout-reader read COUNT [--capture FILE] [--timeout SEC] [--idle-ms MS] FD...\n"
              "       fanout-reader baseline write|writev READERS COUNT MSGFILE [BATCH]\n",
              stderr);
        return 2;
}

static int cmd_read(int argc, char **argv) {
        static Reader r[MAX_FDS];
        const char *capture = NULL;
        uint64_t want, timeout = 60, idle_ms = 0, v;
        ReadResult res;
        size_t n = 0;
        int i, q;

        if (argc < 3 || parse_u64(argv[2], &want) < 0)
                return usage();
        for (i = 3; i < argc; i++) {
                if (streq_arg(argv[i], "--capture") && i + 1 < argc)
                        capture = argv[++i];
                else if (streq_arg(argv[i], "--timeout") && i + 1 < argc) {
                        if (parse_u64(argv[++i], &timeout) < 0)
                                return usage();
                } else if (streq_arg(argv[i], "--idle-ms") && i + 1 < argc) {
                        if (parse_u64(argv[++i], &idle_ms) < 0 || idle_ms > 3600000)
                                return usage();
                } else if (parse_u64(argv[i], &v) == 0 && v < INT32_MAX && n < MAX_FDS)
                        r[n++] = (Reader) { .fd = (int) v };
                else
                        return usage();
        }
        q = read_loop(r, n, want, capture, (unsigned) timeout, (unsigned) idle_ms, &res);
        if (q < 0) {
                fprintf(stderr, "fanout-reader: %s\n", strerror(-q));
                return 1;
        }
        print_read(&res, n);
        return res.min >= want ? 0 : 1;
}

static int write_all(int fd, const char *p, size_t len) {
        while (len > 0) {
                ssize_t w = write(fd, p, len);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += w;
                len -= (size_t) w;
        }
        return 0;
}

/* All of iov[0..n) (which it may modify), however many calls it takes. */
static int writev_all(int fd, struct iovec *iov, size_t n) {
        while (n > 0) {
                ssize_t w = writev(fd, iov, (int) n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                while (n > 0 && (size_t) w >= iov->iov_len) {
                        w -= (ssize_t) iov->iov_len;
                        iov++;
                        n--;
                }
                if (n > 0) {
                        iov->iov_base = (char *) iov->iov_base + w;
                        iov->iov_len -= (size_t) w;
                }
        }
        return 0;
}

static int cmd_baseline(int argc, char **argv) {
        static Reader r[MAX_FDS];
        static int wfd[MAX_FDS];
        uint64_t readers, count, batch = DEFAULT_BATCH;
        bool use_writev;
        char *msg;
        size_t len;
        struct stat st;
        int fd, pfd[2], status;
        pid_t pid;

        if (argc < 6 || parse_u64(argv[3], &readers) < 0 || parse_u64(argv[4], &count) < 0 || readers == 0 ||
            readers > MAX_FDS)
                return usage();
        if (streq_arg(argv[2], "write"))
                use_writev = false;
        else if (streq_arg(argv[2], "writev"))
                use_writev = true;
        else
                return usage();
        if (argc > 6 && (parse_u64(argv[6], &batch) < 0 || batch == 0 || batch > 1024))
                return usage();
        fd = open(argv[5], O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size > (1 << 20)) {
                fprintf(stderr, "fanout-reader: %s: cannot read the message\n", argv[5]);
                return 1;
        }
        len = (size_t) st.st_size;
        msg = malloc(len);
        if (!msg || read(fd, msg, len) != (ssize_t) len)
                return 1;
        close(fd);

        for (uint64_t i = 0; i < readers; i++) {
                int sv[2];
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
                        perror("socketpair");
                        return 1;
                }
                wfd[i] = sv[0];
                r[i] = (Reader) { .fd = sv[1] };
        }
        if (pipe2(pfd, O_CLOEXEC) < 0)
                return 1;
        pid = fork();
        if (pid < 0)
                return 1;
        if (pid == 0) {
                ReadResult res;
                char line[512];
                int k;
                for (uint64_t i = 0; i < readers; i++)
                        close(wfd[i]);
                close(pfd[0]);
                if (read_loop(r, (size_t) readers, count, NULL, 120, 0, &res) < 0)
                        _exit(1);
                k = snprintf(line, sizeof line, "%" PRIu64 " %" PRIu64 " %" PRIu64 "\n", res.min, res.last_ns,
                             res.cpu_ns);
                (void) write_all(pfd[1], line, (size_t) k);
                _exit(res.min >= count ? 0 : 1);
        }
        close(pfd[1]);
        for (uint64_t i = 0; i < readers; i++)
                close(r[i].fd);

        struct iovec *tmpl = calloc(batch, sizeof *tmpl), *iov = calloc(batch, sizeof *iov);
        if (!tmpl || !iov)
                return 1;
        for (uint64_t i = 0; i < batch; i++)
                tmpl[i] = (struct iovec) { .iov_base = msg, .iov_len = len };

        uint64_t t0 = mono_ns(), c0 = cpu_ns();
        int q = 0;
        if (!use_writev) {
                for (uint64_t m = 0; m < count && q == 0; m++)
                        for (uint64_t i = 0; i < readers && q == 0; i++)
                                q = write_all(wfd[i], msg, len);
        } else {
                for (uint64_t m = 0; m < count && q == 0; m += batch) {
                        size_t k = (size_t) (count - m < batch ? count - m : batch);
                        for (uint64_t i = 0; i < readers && q == 0; i++) {
                                memcpy(iov, tmpl, k * sizeof *iov);
                                q = writev_all(wfd[i], iov, k);
                        }
                }
        }
        uint64_t c1 = cpu_ns(), t_written = mono_ns();
        if (q < 0)
                fprintf(stderr, "fanout-reader: write: %s\n", strerror(-q));
        for (uint64_t i = 0; i < readers; i++)
                close(wfd[i]);

        char line[512] = "";
        ssize_t got = read(pfd[0], line, sizeof line - 1);
        unsigned long long rmin = 0, rlast = 0, rcpu = 0;
        if (got > 0) {
                line[got] = '\0';
                (void) sscanf(line, "%llu %llu %llu", &rmin, &rlast, &rcpu);
        }
        if (waitpid(pid, &status, 0) < 0)
                return 1;
        uint64_t end = rlast > t_written ? (uint64_t) rlast : t_written;
        printf("{\"mode\":\"%s\",\"readers\":%" PRIu64 ",\"count\":%" PRIu64 ",\"batch\":%" PRIu64
               ",\"bytes\":%zu,\"deliveries\":%" PRIu64 ",\"writer_cpu_ns\":%" PRIu64 ",\"wall_ns\":%" PRIu64
               ",\"reader_cpu_ns\":%llu,\"reader_min\":%llu}\n",
               use_writev ? "writev" : "write", readers, count, use_writev ? batch : 1, len, readers * count,
               c1 - c0, end - t0, rcpu, rmin);
        free(msg);
        free(tmpl);
        free(iov);
        return q == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
        signal(SIGPIPE, SIG_IGN);
        if (argc < 2)
                return usage();
        if (streq_arg(argv[1], "read"))
                return cmd_read(argc, argv);
        if (streq_arg(argv[1], "baseline"))
                return cmd_baseline(argc, argv);
        return usage();
}
