/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The audit log writer.  Invariants:
 *
 *  - Records get their seq and prev on the loop, in audit_append() order,
 *    and reach the file in that order: the loop appends bytes to the
 *    queue, the sync thread takes the whole queue at once.
 *  - done(r == 0) runs only after the thread reported the record written
 *    (and synced, with sync=always).  Everything queued behind a failed
 *    write or sync fails, and so does every append until a rotation
 *    rebuilds the chain from what the old file really holds (after a
 *    failed fdatasync the page cache cannot be trusted, so the file is not
 *    written again).
 *  - The file is never truncated: a torn last line is terminated with
 *    "\n" and witnessed by the "recovered" record after it, so the bytes
 *    stay for the auditor and chattr +a works.
 *  - Rotation is crash safe: the new file is written and synced under
 *    "<name>.new" first; then <name> → <name>.<seq>, <name>.new → <name>,
 *    and the directory is synced.  audit_open() finishes the job if a crash
 *    came between the two renames.
 *
 * libevent stays single-threaded: the thread only touches the queue under
 * the mutex and writes to an eventfd the loop watches. */

#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <time.h>

#include "audit.h"
#include "kvmid.h"

/* The writer reads this much of the end of a file to resume it: a torn
 * line and the complete record before it. */
#define TAIL_WINDOW (2 * ((size_t) AUDIT_LINE_MAX + 1))
/* Journal mirroring: at most this many entries per kind per window. */
#define JOURNAL_BURST 50U
#define JOURNAL_WINDOW_NS (10ULL * 1000000000ULL)

typedef enum SegmentType {
        SEGMENT_DATA,
        SEGMENT_ROTATE,
} SegmentType;

/* Bytes for the thread: DATA is lines, each with its newline; ROTATE is
 * the first line of the next file (prebuilt), or empty (rebuild: the
 * thread builds the rotate record from the old file's real end). */
typedef struct Segment {
        struct Segment *next;
        SegmentType type;
        char *buf;
        size_t len, cap;
        uint64_t first_seq, last_seq;   /* 0 for a rebuild */
        char *rotated_name;
} Segment;

/* A record the loop waits on, oldest first. */
typedef struct Pending {
        struct Pending *next;
        uint64_t seq;
        AuditKind kind;
        AuditDecision decision;
        AuditDoneFn done;
        void *userdata;
        uint64_t start_ns;
        uint64_t ordinal;               /* appends since open: seqs can be reused after a failure */
        char *line;
        size_t len;
        char digest[AUDIT_HEX_SIZE];
} Pending;

struct AuditSubscription {
        Audit *audit;
        AuditTailFn fn;
        void *userdata;
        uint64_t from_ordinal;
        bool dead;
        AuditSubscription *next;
};

/* The sync thread's own state (the loop reads it only after the join). */
typedef struct Writer {
        int fd;
        uint64_t written_seq;           /* last record written */
        uint64_t done_seq;              /* last record done (per sync mode) */
        bool dirty;                     /* written since the last sync */
        uint64_t dirty_since_ns;
        bool failed;
        int error;
        const char *error_op;
        uint64_t fail_seq;              /* first record that failed */
        uint64_t syncs, bytes;
        /* a rebuild rotation's result, until published */
        bool rebuilt;
        int rebuild_r;
        AuditLink rebuild_link;
        char *rebuild_line;
        size_t rebuild_len;
} Writer;

typedef struct JournalBucket {
        uint64_t window_start_ns;
        unsigned count;
        uint64_t suppressed;
} JournalBucket;

struct Audit {
        struct event_base *base;
        char *path;
        char *name, *tmp_name;          /* in dir_fd */
        int dir_fd;
        AuditSyncMode sync;
        uint64_t interval_ns;
        size_t max_records, max_bytes;
        bool journal;
        AuditFaultFn fault;
        void *fault_userdata;

        /* ---- loop side ---- */
        AuditLink link;                 /* the last record appended */
        uint64_t next_ordinal;
        Pending *head, *tail;
        uint64_t queued, queued_bytes;
        bool degraded, closing;
        int degraded_error;
        bool rotating;
        uint64_t rotate_seq;            /* prebuilt rotation's record; 0: a rebuild */
        AuditDoneFn rotate_done;        /* rebuild only; a prebuilt one is a Pending */
        void *rotate_userdata;
        AuditSubscription *subs;
        unsigned dispatching;
        bool subs_dirty;
        AuditStats stats;
        Latency latency;
        JournalBucket buckets[_AUDIT_KIND_MAX];
        int efd;
        struct event *ev_wake;

        /* ---- shared, under lock ---- */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool lock_init, cond_init;
        pthread_t thread;
        bool thread_started;
        Segment *q_head, *q_tail;
        bool stop;
        /* thread → loop */
        uint64_t t_done_seq;
        bool t_failed;
        int t_error;
        const char *t_error_op;
        uint64_t t_syncs, t_bytes;
        bool t_rebuilt;
        int t_rebuild_r;
        AuditLink t_rebuild_link;
        char *t_rebuild_line;
        size_t t_rebuild_len;

        Writer w;
};

static const char *const sync_mode_names[_AUDIT_SYNC_MAX] = {
        [AUDIT_SYNC_ALWAYS] = "always",
        [AUDIT_SYNC_INTERVAL] = "interval",
        [AUDIT_SYNC_OFF] = "off",
};

const char *audit_sync_mode_to_string(AuditSyncMode m) {
        if (m < 0 || m >= _AUDIT_SYNC_MAX)
                return NULL;
        return sync_mode_names[m];
}

AuditSyncMode audit_sync_mode_from_string(const char *s) {
        for (size_t i = 0; s && i < ELEMENTSOF(sync_mode_names); i++)
                if (streq(sync_mode_names[i], s))
                        return (AuditSyncMode) i;
        return _AUDIT_SYNC_INVALID;
}

static const struct {
        AuditKind kind;
        const char *message_id;
        int priority;
} journal_kinds[] = {
        { AUDIT_KIND_DAEMON_START,        AUDIT_MESSAGE_DAEMON_START,        LOG_LVL_INFO },
        { AUDIT_KIND_DAEMON_STOP,         AUDIT_MESSAGE_DAEMON_STOP,         LOG_LVL_INFO },
        { AUDIT_KIND_AUTH_FAIL,           AUDIT_MESSAGE_AUTH_FAIL,           LOG_LVL_WARNING },
        { AUDIT_KIND_TOKEN_DENY,          AUDIT_MESSAGE_TOKEN_DENY,          LOG_LVL_NOTICE },
        { AUDIT_KIND_MAP_DENY,            AUDIT_MESSAGE_MAP_DENY,            LOG_LVL_WARNING },
        { AUDIT_KIND_UNMAP_DENY,          AUDIT_MESSAGE_UNMAP_DENY,          LOG_LVL_WARNING },
        { AUDIT_KIND_POLICY_RELOAD_OK,    AUDIT_MESSAGE_POLICY_RELOAD_OK,    LOG_LVL_NOTICE },
        { AUDIT_KIND_POLICY_RELOAD_FAIL,  AUDIT_MESSAGE_POLICY_RELOAD_FAIL,  LOG_LVL_ERR },
        { AUDIT_KIND_KVMI_HANDSHAKE_FAIL, AUDIT_MESSAGE_KVMI_HANDSHAKE_FAIL, LOG_LVL_WARNING },
        { AUDIT_KIND_ROTATE,              AUDIT_MESSAGE_ROTATE,              LOG_LVL_INFO },
        { AUDIT_KIND_RECOVERED,           AUDIT_MESSAGE_RECOVERED,           LOG_LVL_WARNING },
};

static uint64_t now_ns(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

/* ---- Files (both threads; no shared state) ------------------------------ */

static int fault(Audit *a, AuditIoOp op, size_t len) {
        return a->fault ? a->fault(a->fault_userdata, op, len) : 0;
}

static int write_all(int fd, const char *buf, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, buf, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                buf += n;
                len -= (size_t) n;
        }
        return 0;
}

static int write_faulty(Audit *a, int fd, const char *buf, size_t len) {
        int f = fault(a, AUDIT_IO_WRITE, len), r;

        if (f < 0)
                return f;
        if (f > 0 && (size_t) f < len) {
                r = write_all(fd, buf, (size_t) f);
                return r < 0 ? r : -EIO;
        }
        return write_all(fd, buf, len);
}

static bool same_file(int fd1, int fd2) {
        struct stat a, b;

        return fstat(fd1, &a) >= 0 && fstat(fd2, &b) >= 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Our write-only fd's file, for reading: by name if that still is it,
 * else through /proc (renamed or unlinked behind our back). */
static int reopen_for_reading(Audit *a, int fd) {
        char p[64];
        int rfd;

        rfd = openat(a->dir_fd, a->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (rfd >= 0 && same_file(fd, rfd))
                return rfd;
        safe_close(rfd);
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        rfd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (rfd >= 0 && same_file(fd, rfd))
                return rfd;
        safe_close(rfd);
        return -ESTALE;
}

/* Scan the end of the file fd is writing.  *ret_file_offset: where the
 * scanned window starts. */
static int scan_tail(Audit *a, int fd, AuditTail *ret, uint64_t *ret_window_start, AuditError *error,
                     uint64_t *ret_error_offset) {
        _cleanup_close_ int rfd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        uint64_t off;
        size_t want, got = 0;
        size_t eoff = 0;
        int r;

        rfd = reopen_for_reading(a, fd);
        if (rfd < 0)
                return rfd;
        if (fstat(rfd, &st) < 0)
                return -errno;
        off = (uint64_t) st.st_size > TAIL_WINDOW ? (uint64_t) st.st_size - TAIL_WINDOW : 0;
        want = (size_t) ((uint64_t) st.st_size - off);
        buf = malloc(want + 1);
        if (!buf)
                return -ENOMEM;
        while (got < want) {
                ssize_t n = pread(rfd, buf + got, want - got, (off_t) (off + got));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                got += (size_t) n;
        }
        r = audit_tail_scan(buf, got, off == 0, ret, error, &eoff);
        if (r == -EBADMSG && ret_error_offset)
                *ret_error_offset = off + eoff;
        if (r < 0)
                return r;
        *ret_window_start = off;
        return 0;
}

static int rename_noreplace(int dir_fd, const char *from, const char *to) {
        if (renameat2(dir_fd, from, dir_fd, to, RENAME_NOREPLACE) >= 0)
                return 0;
        if (errno != EINVAL && errno != ENOSYS)
                return -errno;
        /* file systems without RENAME_NOREPLACE: link() refuses to replace too */
        if (linkat(dir_fd, from, dir_fd, to, 0) < 0)
                return -errno;
        if (unlinkat(dir_fd, from, 0) < 0) {
                int r = -errno;
                (void) unlinkat(dir_fd, to, 0);
                return r;
        }
        return 0;
}

static char *rotated_name(const char *name, uint64_t last_seq) {
        char *s = NULL;

        if (asprintf(&s, "%s.%020" PRIu64, name, last_seq) < 0)
                return NULL;
        return s;
}

/* ---- The sync thread ----------------------------------------------------- */

static void writer_fail(Audit *a, int r, const char *op) {
        Writer *w = &a->w;

        if (w->failed)
                return;
        w->failed = true;
        w->error = r;
        w->error_op = op;
        w->fail_seq = w->done_seq + 1;
        w->dirty = false;               /* never sync a file whose sync failed */
}

static int writer_sync(Audit *a) {
        Writer *w = &a->w;
        int r;

        r = fault(a, AUDIT_IO_SYNC, 0);
        if (r >= 0 && fdatasync(w->fd) < 0)
                r = -errno;
        w->syncs++;
        if (r < 0) {
                writer_fail(a, r, "fdatasync");
                return r;
        }
        w->dirty = false;
        w->done_seq = w->written_seq;
        return 0;
}

/* Write line (with its newline) as the first record of a new file and
 * swap files.  On failure the old file stays current and untouched. */
static int rotate_files(Audit *a, const char *line_nl, size_t len, const char *rotated) {
        Writer *w = &a->w;
        _cleanup_close_ int nfd = -EBADF;
        struct stat cur, named;
        int r;

        if (fstat(w->fd, &cur) < 0)
                return -errno;
        if (fstatat(a->dir_fd, a->name, &named, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        if (cur.st_dev != named.st_dev || cur.st_ino != named.st_ino)
                return -ESTALE;         /* moved behind our back: do not rename someone else's file */
        r = fault(a, AUDIT_IO_ROTATE, len);
        if (r < 0)
                return r;

        if (unlinkat(a->dir_fd, a->tmp_name, 0) < 0 && errno != ENOENT)
                return -errno;
        nfd = openat(a->dir_fd, a->tmp_name, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (nfd < 0)
                return -errno;
        r = write_faulty(a, nfd, line_nl, len);
        if (r >= 0) {
                r = fault(a, AUDIT_IO_SYNC, 0);
                if (r >= 0 && fdatasync(nfd) < 0)
                        r = -errno;
                w->syncs++;
        }
        if (r >= 0)
                r = rename_noreplace(a->dir_fd, a->name, rotated);
        if (r < 0) {
                (void) unlinkat(a->dir_fd, a->tmp_name, 0);
                return r;
        }
        r = rename_noreplace(a->dir_fd, a->tmp_name, a->name);
        if (r < 0) {
                (void) renameat(a->dir_fd, rotated, a->dir_fd, a->name);
                (void) unlinkat(a->dir_fd, a->tmp_name, 0);
                return r;
        }
        /* the new file is current now, whatever the directory sync says */
        w->bytes += len;
        safe_close(w->fd);
        w->fd = TAKE_FD(nfd);
        if (fsync(a->dir_fd) < 0)
                return -errno;  /* the renames may not survive a crash: fail, a rebuild rotation follows */
        return 0;
}

/* Rotation while failed: the chain goes on from the old file's real end. */
static int writer_rebuild(Audit *a) {
        Writer *w = &a->w;
        _cleanup_json_ struct json_object *data = NULL;
        _cleanup_free_ char *rotated = NULL, *line = NULL, *buf = NULL;
        AuditTail tail;
        AuditError e;
        AuditLink link;
        uint64_t window = 0, eoff = 0;
        size_t len;
        int r;

        (void) fdatasync(w->fd);        /* best effort: the old file's bytes are what they are */
        r = scan_tail(a, w->fd, &tail, &window, &e, &eoff);
        if (r < 0)
                return r;

        rotated = rotated_name(a->name, tail.link.seq);
        data = json_object_new_object();
        if (!rotated || !data)
                return -ENOMEM;
        if (json_object_object_add(data, "previous_file", json_object_new_string(rotated)) < 0)
                return -ENOMEM;
        if (w->failed) {
                char ebuf[128];
                if (json_object_object_add(data, "unconfirmed_from", json_object_new_int64((int64_t) w->fail_seq)) < 0 ||
                    json_object_object_add(data, "error",
                                           json_object_new_string(strerror_r(-w->error, ebuf, sizeof ebuf))) < 0 ||
                    json_object_object_add(data, "failed_op", json_object_new_string(w->error_op)) < 0)
                        return -ENOMEM;
        }
        if (tail.torn &&
            (json_object_object_add(data, AUDIT_DATA_TORN_BYTES, json_object_new_int64((int64_t) tail.torn_bytes)) < 0 ||
             json_object_object_add(data, AUDIT_DATA_TORN_SHA256, json_object_new_string(tail.torn_sha256)) < 0 ||
             json_object_object_add(data, AUDIT_DATA_TORN_OFFSET,
                                    json_object_new_int64((int64_t) (window + tail.torn_offset))) < 0))
                return -ENOMEM;

        r = audit_record_build(&(AuditEvent) {
                                       .kind = AUDIT_KIND_ROTATE,
                                       .reason = "audit log recovered after a write failure",
                                       .data = data,
                               },
                               &tail.link, now_ns(CLOCK_REALTIME), now_ns(CLOCK_MONOTONIC), &line, &len, &link);
        if (r < 0)
                return r;
        buf = malloc(len + 1);
        if (!buf)
                return -ENOMEM;
        memcpy(buf, line, len);
        buf[len] = '\n';
        r = rotate_files(a, buf, len + 1, rotated);
        if (r < 0)
                return r;

        w->failed = false;
        w->error = 0;
        w->error_op = NULL;
        w->dirty = false;
        w->written_seq = w->done_seq = link.seq;
        w->rebuild_link = link;
        free(w->rebuild_line);
        w->rebuild_line = TAKE_PTR(line);
        w->rebuild_len = len;
        return 0;
}

static void writer_segment(Audit *a, Segment *seg) {
        Writer *w = &a->w;
        int r;

        if (seg->type == SEGMENT_ROTATE && seg->first_seq == 0) {
                r = writer_rebuild(a);
                w->rebuilt = true;
                w->rebuild_r = r;
                return;
        }
        if (w->failed)
                return;                 /* queued behind the failure: the loop fails them */

        if (seg->type == SEGMENT_DATA) {
                if (seg->len == 0)
                        return;
                r = write_faulty(a, w->fd, seg->buf, seg->len);
                if (r < 0) {
                        writer_fail(a, r, "write");
                        return;
                }
                w->bytes += seg->len;
                w->written_seq = seg->last_seq;
                if (!w->dirty) {
                        w->dirty = true;
                        w->dirty_since_ns = now_ns(CLOCK_MONOTONIC);
                }
                if (a->sync != AUDIT_SYNC_ALWAYS)
                        w->done_seq = w->written_seq;
                return;
        }

        /* prebuilt rotation: the old file is complete and durable first */
        if (w->dirty && writer_sync(a) < 0)
                return;
        r = rotate_files(a, seg->buf, seg->len, seg->rotated_name);
        if (r < 0) {
                writer_fail(a, r, "rotate");
                return;
        }
        w->written_seq = w->done_seq = seg->first_seq;
}

static void segment_free(Segment *s) {
        if (!s)
                return;
        free(s->buf);
        free(s->rotated_name);
        free(s);
}

static void writer_publish(Audit *a) {
        Writer *w = &a->w;
        uint64_t one = 1;
        ssize_t n;

        pthread_mutex_lock(&a->lock);
        a->t_done_seq = w->done_seq;
        a->t_failed = w->failed;
        a->t_error = w->error;
        a->t_error_op = w->error_op;
        a->t_syncs = w->syncs;
        a->t_bytes = w->bytes;
        if (w->rebuilt) {
                a->t_rebuilt = true;
                a->t_rebuild_r = w->rebuild_r;
                a->t_rebuild_link = w->rebuild_link;
                free(a->t_rebuild_line);
                a->t_rebuild_line = TAKE_PTR(w->rebuild_line);
                a->t_rebuild_len = w->rebuild_len;
                w->rebuilt = false;
        }
        pthread_mutex_unlock(&a->lock);

        n = write(a->efd, &one, sizeof one);
        (void) n;               /* EAGAIN: the counter is already nonzero, the loop will look */
}

static bool interval_due(Audit *a) {
        const Writer *w = &a->w;

        return a->sync == AUDIT_SYNC_INTERVAL && w->dirty && now_ns(CLOCK_MONOTONIC) >= w->dirty_since_ns + a->interval_ns;
}

static void *sync_thread(void *userdata) {
        Audit *a = userdata;
        Writer *w = &a->w;
        bool stop = false;

        while (!stop) {
                Segment *list;

                pthread_mutex_lock(&a->lock);
                while (!a->q_head && !a->stop && !interval_due(a)) {
                        if (w->dirty && a->sync == AUDIT_SYNC_INTERVAL) {
                                uint64_t t = w->dirty_since_ns + a->interval_ns;
                                struct timespec ts = { .tv_sec = (time_t) (t / 1000000000ULL),
                                                       .tv_nsec = (long) (t % 1000000000ULL) };
                                (void) pthread_cond_timedwait(&a->cond, &a->lock, &ts);
                        } else
                                (void) pthread_cond_wait(&a->cond, &a->lock);
                }
                list = a->q_head;
                a->q_head = a->q_tail = NULL;
                stop = a->stop;
                pthread_mutex_unlock(&a->lock);

                while (list) {
                        Segment *next = list->next;
                        writer_segment(a, list);
                        segment_free(list);
                        list = next;
                }
                /* One sync for everything taken: the group commit. */
                if (w->dirty && !w->failed && (a->sync == AUDIT_SYNC_ALWAYS || stop || interval_due(a)))
                        (void) writer_sync(a);
                writer_publish(a);
        }
        return NULL;
}

/* ---- Loop side ----------------------------------------------------------- */

_printf_(1, 2) static char *field(const char *fmt, ...) {
        va_list ap;
        char *s;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        return r < 0 ? NULL : s;
}

/* Peer strings in MESSAGE=: one line, no quotes to fake fields with. */
static void sanitize(char *dst, size_t size, const char *src) {
        size_t i = 0;

        for (; src && *src && i + 1 < size; src++)
                dst[i++] = (unsigned char) *src < 0x20 || *src == 0x7f || *src == '"' || *src == '\\' ? '?' : *src;
        dst[i] = 0;
}

static const char *member_string(struct json_object *root, const char *obj, const char *key) {
        struct json_object *o = obj ? json_object_object_get(root, obj) : root;
        struct json_object *v = json_object_object_get(o, key);

        return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* Key events to the journal, with the chain position as an anchor.
 * Rate-limited per kind: peers can cause denials. */
static void journal_record(Audit *a, uint64_t seq, AuditKind kind, const char *line, size_t len, const char *digest) {
        const char *id = NULL;
        int prio = LOG_LVL_INFO;
        JournalBucket *b;
        AuditRecord rec;
        uint64_t now;
        char intro[128], target[128], reason[256], msg[640];
        char *f[12] = {};
        struct iovec iov[12];
        size_t n = 0;
        bool ok = true;

        if (!a->journal)
                return;
        for (size_t i = 0; i < ELEMENTSOF(journal_kinds); i++)
                if (journal_kinds[i].kind == kind) {
                        id = journal_kinds[i].message_id;
                        prio = journal_kinds[i].priority;
                }
        if (!id)
                return;
        b = &a->buckets[kind];
        now = now_ns(CLOCK_MONOTONIC);
        if (b->window_start_ns == 0 || now - b->window_start_ns >= JOURNAL_WINDOW_NS) {
                b->window_start_ns = now;
                b->count = 0;
        }
        if (b->count >= JOURNAL_BURST) {
                b->suppressed++;
                a->stats.journal_suppressed++;
                return;
        }
        b->count++;
        if (audit_record_parse(line, len, &rec, NULL) < 0)
                return;
        sanitize(intro, sizeof intro, member_string(rec.root, "subject", "introspector"));
        sanitize(target, sizeof target, member_string(rec.root, "object", "target"));
        sanitize(reason, sizeof reason, member_string(rec.root, NULL, "reason"));
        snprintf(msg, sizeof msg, "audit %s%s%s%s%s%s%s (seq %" PRIu64 ")%s%s", audit_kind_to_string(kind),
                 intro[0] ? " introspector=\"" : "", intro, intro[0] ? "\"" : "",
                 target[0] ? " target=\"" : "", target, target[0] ? "\"" : "", seq,
                 reason[0] ? ": " : "", reason);

        f[n++] = field("MESSAGE=%s", msg);
        f[n++] = field("MESSAGE_ID=%s", id);
        f[n++] = field("PRIORITY=%d", prio);
        f[n++] = field("KVMID_AUDIT_KIND=%s", audit_kind_to_string(kind));
        f[n++] = field("KVMID_AUDIT_SEQ=%" PRIu64, seq);
        f[n++] = field("KVMID_AUDIT_DIGEST=%s", digest);
        f[n++] = field("KVMID_AUDIT_PATH=%s", a->path);
        if (member_string(rec.root, "subject", "introspector"))
                f[n++] = field("KVMID_INTROSPECTOR=%s", member_string(rec.root, "subject", "introspector"));
        if (member_string(rec.root, "object", "target"))
                f[n++] = field("KVMID_TARGET=%s", member_string(rec.root, "object", "target"));
        if (member_string(rec.root, NULL, "rule"))
                f[n++] = field("KVMID_RULE=%s", member_string(rec.root, NULL, "rule"));
        if (b->suppressed > 0) {
                f[n++] = field("KVMID_AUDIT_SUPPRESSED=%" PRIu64, b->suppressed);
                b->suppressed = 0;
        }
        for (size_t i = 0; i < n; i++) {
                if (!f[i])
                        ok = false;
                else
                        iov[i] = (struct iovec) { .iov_base = f[i], .iov_len = strlen(f[i]) };
        }
        if (ok)
                (void) sd_journal_sendv(iov, (int) n);  /* no journal: nothing to do */
        for (size_t i = 0; i < n; i++)
                free(f[i]);
        audit_record_done(&rec);
}

/* Not a record: the state of the log itself. */
static void journal_state(Audit *a, const char *id, int prio, const char *msg) {
        if (!a->journal)
                return;
        (void) sd_journal_send("MESSAGE=%s", msg, "MESSAGE_ID=%s", id, "PRIORITY=%d", prio,
                               "KVMID_AUDIT_PATH=%s", a->path, "KVMID_AUDIT_SEQ=%" PRIu64, a->link.seq, NULL);
}

static void subs_sweep(Audit *a) {
        AuditSubscription **p = &a->subs;

        if (a->dispatching > 0 || !a->subs_dirty)
                return;
        while (*p) {
                AuditSubscription *s = *p;
                if (s->dead) {
                        *p = s->next;
                        free(s);
                } else
                        p = &s->next;
        }
        a->subs_dirty = false;
}

/* A record is in the file: tell the world. */
static void published(Audit *a, uint64_t ordinal, uint64_t seq, AuditKind kind, AuditDecision decision,
                      const char *line, size_t len, const char *digest) {
        AuditTailRecord rec = { .seq = seq, .kind = kind, .decision = decision, .line = line, .len = len };

        a->stats.records++;
        a->stats.last_seq = seq;
        memcpy(a->stats.last_digest, digest, AUDIT_HEX_SIZE);
        journal_record(a, seq, kind, line, len, digest);
        a->dispatching++;
        for (AuditSubscription *s = a->subs; s; s = s->next)
                if (!s->dead && ordinal >= s->from_ordinal)
                        s->fn(s->userdata, &rec);
        a->dispatching--;
        subs_sweep(a);
}

static void complete(Audit *a, int r) {
        Pending *p = a->head;

        a->head = p->next;
        if (!a->head)
                a->tail = NULL;
        a->queued--;
        a->queued_bytes -= p->len;
        latency_add(&a->latency, now_ns(CLOCK_MONOTONIC) - p->start_ns);
        if (r < 0)
                a->stats.failed++;
        if (p->kind == AUDIT_KIND_ROTATE && a->rotating && p->seq == a->rotate_seq) {
                a->rotating = false;
                if (r >= 0) {
                        a->stats.rotations++;
                        log_info("audit: rotated %s, continuing at seq %" PRIu64, a->path, p->seq);
                } else
                        log_error_errno(r, "audit: rotating %s failed: %m", a->path);
        }

        a->dispatching++;
        if (p->done)
                p->done(p->userdata, r);
        a->dispatching--;
        if (r >= 0)
                published(a, p->ordinal, p->seq, p->kind, p->decision, p->line, p->len, p->digest);
        free(p->line);
        free(p);
}

static void enter_degraded(Audit *a, int error, const char *op) {
        char msg[256];

        a->degraded = true;
        a->degraded_error = error < 0 ? error : -EIO;
        a->stats.last_error = a->degraded_error;
        a->stats.last_error_op = op;
        a->stats.last_error_usec = now_ns(CLOCK_REALTIME) / 1000;
        snprintf(msg, sizeof msg, "audit log %s degraded: %s failed: %s; decisions fail closed until it is rotated",
                 a->path, op ? op : "write", strerror(-a->degraded_error));
        log_error("%s", msg);
        journal_state(a, AUDIT_MESSAGE_DEGRADED, LOG_LVL_ERR, msg);
}

/* Apply what the thread reported. */
static void audit_process(Audit *a) {
        uint64_t done_seq;
        bool failed, rebuilt;
        int error, rebuild_r = 0;
        const char *op;
        AuditLink rebuild_link = {};
        _cleanup_free_ char *rebuild_line = NULL;
        size_t rebuild_len = 0;

        pthread_mutex_lock(&a->lock);
        done_seq = a->t_done_seq;
        failed = a->t_failed;
        error = a->t_error;
        op = a->t_error_op;
        a->stats.syncs = a->t_syncs;
        a->stats.bytes = a->t_bytes;
        rebuilt = a->t_rebuilt;
        if (rebuilt) {
                rebuild_r = a->t_rebuild_r;
                rebuild_link = a->t_rebuild_link;
                rebuild_line = TAKE_PTR(a->t_rebuild_line);
                rebuild_len = a->t_rebuild_len;
                a->t_rebuilt = false;
        }
        pthread_mutex_unlock(&a->lock);

        while (a->head && a->head->seq <= done_seq)
                complete(a, 0);
        if (failed) {
                /* set first, so callbacks that append are refused */
                if (!a->degraded)
                        enter_degraded(a, error, op);
                while (a->head)
                        complete(a, a->degraded_error);
        }
        if (rebuilt) {
                AuditDoneFn done = a->rotate_done;
                void *userdata = a->rotate_userdata;

                a->rotating = false;
                a->rotate_done = NULL;
                a->rotate_userdata = NULL;
                if (rebuild_r >= 0) {
                        char msg[256];
                        a->link = rebuild_link;
                        a->degraded = false;
                        a->degraded_error = 0;
                        a->stats.rotations++;
                        snprintf(msg, sizeof msg, "audit log %s restored: rotated, continuing at seq %" PRIu64, a->path,
                                 rebuild_link.seq);
                        log_notice("%s", msg);
                        journal_state(a, AUDIT_MESSAGE_RESTORED, LOG_LVL_NOTICE, msg);
                } else {
                        a->stats.last_error = rebuild_r;
                        a->stats.last_error_op = "rotate";
                        a->stats.last_error_usec = now_ns(CLOCK_REALTIME) / 1000;
                        log_error_errno(rebuild_r, "audit: rotating degraded log %s failed: %m", a->path);
                }
                if (done) {
                        a->dispatching++;
                        done(userdata, rebuild_r);
                        a->dispatching--;
                }
                if (rebuild_r >= 0 && rebuild_line)
                        published(a, a->next_ordinal++, rebuild_link.seq, AUDIT_KIND_ROTATE, AUDIT_DECISION_NONE,
                                  rebuild_line, rebuild_len, rebuild_link.digest);
        }
}

static void on_wake(evutil_socket_t fd, short what, void *userdata) {
        Audit *a = userdata;
        uint64_t v;
        ssize_t n;

        n = read(fd, &v, sizeof v);
        (void) n;
        audit_process(a);
}

/* Queue bytes for the thread; the caller holds no lock. */
static int queue_segment(Audit *a, Segment *seg) {
        pthread_mutex_lock(&a->lock);
        if (a->q_tail)
                a->q_tail->next = seg;
        else
                a->q_head = seg;
        a->q_tail = seg;
        pthread_cond_signal(&a->cond);
        pthread_mutex_unlock(&a->lock);
        return 0;
}

static int segment_append(Audit *a, const char *line, size_t len, uint64_t seq) {
        Segment *seg = a->q_tail;

        if (!seg || seg->type != SEGMENT_DATA) {
                seg = calloc(1, sizeof *seg);
                if (!seg)
                        return -ENOMEM;
                seg->type = SEGMENT_DATA;
                seg->first_seq = seq;
                if (a->q_tail)
                        a->q_tail->next = seg;
                else
                        a->q_head = seg;
                a->q_tail = seg;
        }
        if (seg->len + len + 1 > seg->cap) {
                size_t cap = MAX(MAX(seg->cap * 2, seg->len + len + 1), (size_t) 4096);
                char *p = realloc(seg->buf, cap);
                if (!p)
                        return -ENOMEM;         /* an empty new segment is harmless: nothing to write */
                seg->buf = p;
                seg->cap = cap;
        }
        memcpy(seg->buf + seg->len, line, len);
        seg->buf[seg->len + len] = '\n';
        seg->len += len + 1;
        seg->last_seq = seq;
        return 0;
}

static int queue_line(Audit *a, const char *line, size_t len, uint64_t seq) {
        int r;

        pthread_mutex_lock(&a->lock);
        r = segment_append(a, line, len, seq);
        if (r >= 0)
                pthread_cond_signal(&a->cond);
        pthread_mutex_unlock(&a->lock);
        return r;
}

static void pending_push(Audit *a, Pending *p) {
        p->ordinal = a->next_ordinal++;
        if (a->tail)
                a->tail->next = p;
        else
                a->head = p;
        a->tail = p;
        a->queued++;
        a->queued_bytes += p->len;
}

int audit_append(Audit *a, const AuditEvent *ev, AuditDoneFn done, void *userdata) {
        _cleanup_free_ char *line = NULL;
        Pending *p;
        AuditLink link;
        size_t len;
        int r;

        assert(a);
        assert(ev);

        if (a->closing)
                return -ESHUTDOWN;
        if (a->degraded)
                return a->degraded_error;
        if (a->queued >= a->max_records)
                return -ENOBUFS;
        r = audit_record_build(ev, &a->link, now_ns(CLOCK_REALTIME), now_ns(CLOCK_MONOTONIC), &line, &len, &link);
        if (r < 0)
                return r;
        if (a->queued_bytes + len > a->max_bytes)
                return -ENOBUFS;
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        r = queue_line(a, line, len, link.seq);
        if (r < 0) {
                free(p);
                return r;
        }
        *p = (Pending) {
                .seq = link.seq,
                .kind = ev->kind,
                .decision = ev->decision,
                .done = done,
                .userdata = userdata,
                .start_ns = now_ns(CLOCK_MONOTONIC),
                .line = TAKE_PTR(line),
                .len = len,
        };
        if (p->decision == AUDIT_DECISION_NONE && audit_kind_decisions(ev->kind) == (1U << AUDIT_DECISION_ALLOW))
                p->decision = AUDIT_DECISION_ALLOW;
        if (p->decision == AUDIT_DECISION_NONE && audit_kind_decisions(ev->kind) == (1U << AUDIT_DECISION_DENY))
                p->decision = AUDIT_DECISION_DENY;
        memcpy(p->digest, link.digest, AUDIT_HEX_SIZE);
        pending_push(a, p);
        a->link = link;
        return 0;
}

int audit_emit(Audit *a, const AuditEvent *ev) {
        return audit_append(a, ev, NULL, NULL);
}

uint64_t audit_last_seq(const Audit *a) {
        return a->link.seq;
}

void audit_last_link(const Audit *a, AuditLink *ret) {
        *ret = a->link;
}

int audit_rotate(Audit *a, AuditDoneFn done, void *userdata) {
        _cleanup_json_ struct json_object *data = NULL;
        _cleanup_free_ char *rotated = NULL, *line = NULL;
        Segment *seg;
        Pending *p;
        AuditLink link;
        struct stat st;
        size_t len;
        int r;

        assert(a);

        if (a->closing)
                return -ESHUTDOWN;
        if (a->rotating)
                return -EBUSY;
        if (a->degraded) {
                seg = calloc(1, sizeof *seg);
                if (!seg)
                        return -ENOMEM;
                seg->type = SEGMENT_ROTATE;
                a->rotating = true;
                a->rotate_seq = 0;
                a->rotate_done = done;
                a->rotate_userdata = userdata;
                return queue_segment(a, seg);
        }

        rotated = rotated_name(a->name, a->link.seq);
        data = json_object_new_object();
        if (!rotated || !data)
                return -ENOMEM;
        if (fstatat(a->dir_fd, rotated, &st, AT_SYMLINK_NOFOLLOW) >= 0)
                return log_error_errno(-EEXIST, "audit: cannot rotate %s: %s already exists", a->path, rotated);
        if (json_object_object_add(data, "previous_file", json_object_new_string(rotated)) < 0)
                return -ENOMEM;
        r = audit_record_build(&(AuditEvent) { .kind = AUDIT_KIND_ROTATE, .data = data }, &a->link,
                               now_ns(CLOCK_REALTIME), now_ns(CLOCK_MONOTONIC), &line, &len, &link);
        if (r < 0)
                return r;

        seg = calloc(1, sizeof *seg);
        p = calloc(1, sizeof *p);
        if (!seg || !p) {
                free(seg);
                free(p);
                return -ENOMEM;
        }
        seg->buf = malloc(len + 1);
        if (!seg->buf) {
                free(seg);
                free(p);
                return -ENOMEM;
        }
        memcpy(seg->buf, line, len);
        seg->buf[len] = '\n';
        seg->len = seg->cap = len + 1;
        seg->type = SEGMENT_ROTATE;
        seg->first_seq = seg->last_seq = link.seq;
        seg->rotated_name = TAKE_PTR(rotated);

        *p = (Pending) {
                .seq = link.seq,
                .kind = AUDIT_KIND_ROTATE,
                .done = done,
                .userdata = userdata,
                .start_ns = now_ns(CLOCK_MONOTONIC),
                .line = TAKE_PTR(line),
                .len = len,
        };
        memcpy(p->digest, link.digest, AUDIT_HEX_SIZE);
        pending_push(a, p);
        a->link = link;
        a->rotating = true;
        a->rotate_seq = link.seq;
        return queue_segment(a, seg);
}

bool audit_is_degraded(const Audit *a) {
        return a->degraded;
}

const char *audit_path(const Audit *a) {
        return a->path;
}

void audit_get_stats(const Audit *a, AuditStats *ret) {
        AuditStats s = a->stats;

        s.sync = a->sync;
        s.degraded = a->degraded;
        s.queued = a->queued;
        s.queued_bytes = a->queued_bytes;
        s.latency_count = a->latency.count;
        s.latency_max_ns = a->latency.max_ns;
        s.latency_p50_ns = latency_quantile(&a->latency, 0.5);
        s.latency_p99_ns = latency_quantile(&a->latency, 0.99);
        *ret = s;
}

int audit_subscribe(Audit *a, AuditTailFn fn, void *userdata, AuditSubscription **ret) {
        AuditSubscription *s, **p;

        assert(a);
        assert(fn);

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        *s = (AuditSubscription) { .audit = a, .fn = fn, .userdata = userdata, .from_ordinal = a->next_ordinal };
        for (p = &a->subs; *p; p = &(*p)->next)
                ;
        *p = s;
        if (ret)
                *ret = s;
        return 0;
}

AuditSubscription *audit_unsubscribe(AuditSubscription *s) {
        if (!s)
                return NULL;
        s->dead = true;
        s->audit->subs_dirty = true;
        subs_sweep(s->audit);
        return NULL;
}

/* ---- Open and close ------------------------------------------------------ */

/* Terminate a torn last line and witness it, or add the newline a
 * complete last record lacks.  One write, so a crash leaves at worst
 * another torn line after a terminated one (which open refuses: that is
 * not what a single crash leaves, so a person should look). */
static int audit_recover(Audit *a, const AuditTail *tail, uint64_t window) {
        _cleanup_json_ struct json_object *data = json_object_new_object();
        _cleanup_free_ char *line = NULL, *buf = NULL;
        AuditLink link;
        size_t len;
        int r;

        if (!data)
                return -ENOMEM;
        if (tail->torn &&
            (json_object_object_add(data, AUDIT_DATA_TORN_BYTES, json_object_new_int64((int64_t) tail->torn_bytes)) < 0 ||
             json_object_object_add(data, AUDIT_DATA_TORN_SHA256, json_object_new_string(tail->torn_sha256)) < 0 ||
             json_object_object_add(data, AUDIT_DATA_TORN_OFFSET,
                                    json_object_new_int64((int64_t) (window + tail->torn_offset))) < 0))
                return -ENOMEM;
        r = audit_record_build(&(AuditEvent) {
                                       .kind = AUDIT_KIND_RECOVERED,
                                       .reason = tail->torn ? "torn last line: interrupted write"
                                                            : "last record had no newline: interrupted write",
                                       .data = data,
                               },
                               &tail->link, now_ns(CLOCK_REALTIME), now_ns(CLOCK_MONOTONIC), &line, &len, &link);
        if (r < 0)
                return r;
        buf = malloc(len + 2);
        if (!buf)
                return -ENOMEM;
        buf[0] = '\n';
        memcpy(buf + 1, line, len);
        buf[len + 1] = '\n';
        r = write_all(a->w.fd, buf, len + 2);
        if (r < 0)
                return log_error_errno(r, "audit: cannot write the recovered record to %s: %m", a->path);
        if (fdatasync(a->w.fd) < 0)
                return log_error_errno(errno, "audit: cannot sync %s: %m", a->path);
        a->w.bytes += len + 2;
        a->w.syncs++;

        if (tail->torn)
                log_warning("audit: %s ended in a torn line (%zu bytes at offset %" PRIu64 "); "
                            "terminated it, chain continues at seq %" PRIu64,
                            a->path, tail->torn_bytes, window + tail->torn_offset, link.seq);
        else
                log_warning("audit: %s: last record had no newline; added it, chain continues at seq %" PRIu64,
                            a->path, link.seq);
        a->link = link;
        published(a, a->next_ordinal++, link.seq, AUDIT_KIND_RECOVERED, AUDIT_DECISION_NONE, line, len, link.digest);
        return 0;
}

static int audit_resume(Audit *a) {
        AuditTail tail;
        AuditError e = {};
        uint64_t window = 0, eoff = 0;
        int r;

        r = scan_tail(a, a->w.fd, &tail, &window, &e, &eoff);
        if (r == -EBADMSG)
                return log_error_errno(r, "audit: %s is damaged at byte %" PRIu64 ": %s; "
                                       "check it with kvmictl audit verify and move it aside",
                                       a->path, eoff, e.message);
        if (r < 0)
                return log_error_errno(r, "audit: cannot read the end of %s: %m", a->path);
        a->link = tail.link;
        if (tail.torn || tail.unterminated) {
                r = audit_recover(a, &tail, window);
                if (r < 0)
                        return r;
        }
        a->stats.last_seq = a->link.seq;
        memcpy(a->stats.last_digest, a->link.digest, AUDIT_HEX_SIZE);
        return 0;
}

static int split_path(Audit *a, const char *path, char **ret_dir) {
        const char *slash = strrchr(path, '/');
        char *dir, *name;

        if (slash) {
                dir = slash == path ? strdup("/") : strndup(path, (size_t) (slash - path));
                name = strdup(slash + 1);
        } else {
                dir = strdup(".");
                name = strdup(path);
        }
        if (!dir || !name) {
                free(dir);
                free(name);
                return -ENOMEM;
        }
        if (!name[0] || streq(name, ".") || streq(name, "..")) {
                free(dir);
                free(name);
                return -EINVAL;
        }
        a->name = name;
        *ret_dir = dir;
        return 0;
}

/* A crash between the two renames of a rotation leaves <name>.new and no
 * <name>: finish it.  With <name> present, <name>.new never took effect. */
static int finish_rotation(Audit *a) {
        struct stat st;

        if (fstatat(a->dir_fd, a->name, &st, AT_SYMLINK_NOFOLLOW) >= 0) {
                if (unlinkat(a->dir_fd, a->tmp_name, 0) >= 0)
                        log_notice("audit: removed %s.new left by an interrupted rotation", a->path);
                return 0;
        }
        if (errno != ENOENT)
                return log_error_errno(errno, "audit: cannot stat %s: %m", a->path);
        if (fstatat(a->dir_fd, a->tmp_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                return 0;
        if (renameat2(a->dir_fd, a->tmp_name, a->dir_fd, a->name, RENAME_NOREPLACE) < 0)
                return log_error_errno(errno, "audit: cannot finish the interrupted rotation of %s: %m", a->path);
        (void) fsync(a->dir_fd);
        log_notice("audit: finished an interrupted rotation of %s", a->path);
        return 0;
}

int audit_open(struct event_base *base, const AuditConfig *cfg, Audit **ret) {
        _cleanup_(audit_freep) Audit *a = NULL;
        _cleanup_free_ char *dir = NULL;
        pthread_condattr_t ca;
        sigset_t all, old;
        struct stat st;
        int r;

        assert(base);
        assert(cfg);
        assert(ret);

        if (!cfg->path || !cfg->path[0] || cfg->sync < 0 || cfg->sync >= _AUDIT_SYNC_MAX)
                return -EINVAL;

        a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        a->base = base;
        a->dir_fd = a->efd = a->w.fd = -EBADF;
        a->sync = cfg->sync;
        a->interval_ns = (uint64_t) (cfg->interval_msec ? cfg->interval_msec : AUDIT_DEFAULT_INTERVAL_MSEC) * 1000000ULL;
        a->max_records = cfg->max_queued_records ? cfg->max_queued_records : AUDIT_DEFAULT_MAX_QUEUED_RECORDS;
        a->max_bytes = cfg->max_queued_bytes ? cfg->max_queued_bytes : AUDIT_DEFAULT_MAX_QUEUED_BYTES;
        a->journal = cfg->journal;
        a->fault = cfg->fault;
        a->fault_userdata = cfg->fault_userdata;
        audit_link_init(&a->link);
        memcpy(a->stats.last_digest, AUDIT_ZERO_HASH, AUDIT_HEX_SIZE);
        a->path = strdup(cfg->path);
        if (!a->path)
                return -ENOMEM;
        r = split_path(a, cfg->path, &dir);
        if (r < 0)
                return r;
        if (asprintf(&a->tmp_name, "%s.new", a->name) < 0) {
                a->tmp_name = NULL;
                return -ENOMEM;
        }

        r = pthread_mutex_init(&a->lock, NULL);
        if (r != 0)
                return -r;
        a->lock_init = true;
        r = pthread_condattr_init(&ca);
        if (r != 0)
                return -r;
        r = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        if (r == 0)
                r = pthread_cond_init(&a->cond, &ca);
        pthread_condattr_destroy(&ca);
        if (r != 0)
                return -r;
        a->cond_init = true;

        a->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (a->dir_fd < 0)
                return log_error_errno(errno, "audit: cannot open directory %s: %m", dir);
        r = finish_rotation(a);
        if (r < 0)
                return r;
        /* O_NONBLOCK: a FIFO planted at the path must not hang the start */
        a->w.fd = openat(a->dir_fd, a->name,
                         O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600);
        if (a->w.fd < 0)
                return log_error_errno(errno, "audit: cannot open %s: %m", a->path);
        if (fstat(a->w.fd, &st) < 0)
                return log_error_errno(errno, "audit: cannot stat %s: %m", a->path);
        if (!S_ISREG(st.st_mode))
                return log_error_errno(-EINVAL, "audit: %s is not a regular file", a->path);
        if (fcntl(a->w.fd, F_SETFL, O_APPEND) < 0)
                return log_error_errno(errno, "audit: cannot set flags on %s: %m", a->path);
        if (st.st_mode & 0022)
                log_warning("audit: %s is writable by group or others (mode %04o)", a->path,
                            (unsigned) (st.st_mode & 07777));
        if (st.st_size == 0)
                (void) fsync(a->dir_fd);        /* the new name must survive a crash too */

        r = audit_resume(a);
        if (r < 0)
                return r;
        a->w.written_seq = a->w.done_seq = a->t_done_seq = a->link.seq;
        a->t_syncs = a->w.syncs;
        a->t_bytes = a->w.bytes;
        a->stats.syncs = a->w.syncs;
        a->stats.bytes = a->w.bytes;

        a->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (a->efd < 0)
                return -errno;
        a->ev_wake = event_new(base, a->efd, EV_READ | EV_PERSIST, on_wake, a);
        if (!a->ev_wake || event_add(a->ev_wake, NULL) < 0)
                return -ENOMEM;

        /* signals stay with the loop's thread */
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        r = pthread_create(&a->thread, NULL, sync_thread, a);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r != 0)
                return -r;
        a->thread_started = true;

        log_debug("audit: %s open, sync=%s, chain at seq %" PRIu64, a->path, sync_mode_names[a->sync], a->link.seq);
        *ret = TAKE_PTR(a);
        return 0;
}

int audit_close(Audit *a) {
        int r = 0;

        if (!a)
                return 0;
        assert(a->dispatching == 0);

        a->closing = true;
        if (a->thread_started) {
                pthread_mutex_lock(&a->lock);
                a->stop = true;
                pthread_cond_signal(&a->cond);
                pthread_mutex_unlock(&a->lock);
                pthread_join(a->thread, NULL);
                a->thread_started = false;
                audit_process(a);
                if (a->w.failed)
                        r = a->w.error;
        }
        while (a->head)
                complete(a, -ECANCELED);
        if (a->rotating && a->rotate_done)
                a->rotate_done(a->rotate_userdata, -ECANCELED);

        while (a->q_head) {
                Segment *s = a->q_head;
                a->q_head = s->next;
                segment_free(s);
        }
        while (a->subs) {
                AuditSubscription *s = a->subs;
                a->subs = s->next;
                free(s);
        }
        if (a->ev_wake)
                event_free(a->ev_wake);
        safe_close(a->efd);
        safe_close(a->w.fd);
        safe_close(a->dir_fd);
        if (a->cond_init)
                pthread_cond_destroy(&a->cond);
        if (a->lock_init)
                pthread_mutex_destroy(&a->lock);
        free(a->w.rebuild_line);
        free(a->t_rebuild_line);
        free(a->path);
        free(a->name);
        free(a->tmp_name);
        free(a);
        return r;
}

Audit *audit_free(Audit *a) {
        (void) audit_close(a);
        return NULL;
}
