/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Unit tests for proto/varlink-client.c against scripted fake servers: a
 * forked child on the other end of a socketpair (no threads needed). */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "varlink-client.h"

/* ---- the fake server (runs in the child: no ck_assert there) ----------- */

#define CHILD_CHECK(cond)                                                       \
        do {                                                                    \
                if (!(cond)) {                                                  \
                        fprintf(stderr, "server %s:%d: %s\n", __FILE__, __LINE__, #cond); \
                        _exit(3);                                               \
                }                                                               \
        } while (0)

/* One request, read byte by byte so nothing after its NUL is consumed.
 * NULL once the client is gone. */
static char *srv_read(int fd) {
        size_t n = 0, size = 256;
        char *buf = malloc(size);

        CHILD_CHECK(buf);
        for (;;) {
                ssize_t k = read(fd, buf + n, 1);

                if (k < 0 && errno == EINTR)
                        continue;
                /* A client closing with our bytes unread resets the stream. */
                CHILD_CHECK(k >= 0 || errno == ECONNRESET);
                if (k <= 0) {
                        free(buf);
                        return NULL;
                }
                if (buf[n] == 0)
                        return buf;
                if (++n == size) {
                        size *= 2;
                        buf = realloc(buf, size);
                        CHILD_CHECK(buf);
                }
        }
}

/* Reads one request and checks it contains each given fragment. */
static void srv_expect(int fd, ...) {
        char *req = srv_read(fd);
        const char *frag;
        va_list ap;

        CHILD_CHECK(req);
        va_start(ap, fd);
        while ((frag = va_arg(ap, const char *))) {
                if (!strstr(req, frag))
                        fprintf(stderr, "server: '%s' lacks '%s'\n", req, frag);
                CHILD_CHECK(strstr(req, frag));
        }
        va_end(ap);
        free(req);
}

static void srv_write(int fd, const char *data, size_t len) {
        while (len > 0) {
                ssize_t k = write(fd, data, len);

                if (k < 0 && errno == EINTR)
                        continue;
                CHILD_CHECK(k > 0);
                data += k;
                len -= (size_t) k;
        }
}

/* Writes a string literal including its NUL(s). */
#define SRV_SEND(fd, lit) srv_write((fd), (lit), sizeof(lit))

/* Waits for the client to go away. */
static void srv_wait_eof(int fd) {
        char *req = srv_read(fd);

        CHILD_CHECK(!req);
}

typedef void (*script_fn)(int fd);

typedef struct Server {
        pid_t pid;
        VarlinkClient *client;
} Server;

static Server server_start(script_fn script) {
        int sv[2];
        Server s = {};
        pid_t pid;

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        fflush(NULL);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(sv[0]);
                script(sv[1]);
                close(sv[1]);
                _exit(0);
        }

        close(sv[1]);
        ck_assert_int_eq(varlink_client_new_from_fd(sv[0], &s.client), 0);
        ck_assert_int_eq(varlink_client_fd(s.client), sv[0]);
        s.pid = pid;
        return s;
}

/* Closes the client (the script may be waiting for that) and checks that
 * the script ran to its end. */
static void server_finish(Server *s) {
        int status;

        s->client = varlink_client_free(s->client);
        ck_assert_int_eq(waitpid(s->pid, &status, 0), s->pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fake server failed: status %d", status);
}

static void server_kill(Server *s) {
        int status;

        s->client = varlink_client_free(s->client);
        (void) kill(s->pid, SIGKILL);
        ck_assert_int_eq(waitpid(s->pid, &status, 0), s->pid);
}

static long long elapsed_ms(const struct timespec *since) {
        struct timespec now;

        clock_gettime(CLOCK_MONOTONIC, &now);
        return (now.tv_sec - since->tv_sec) * 1000LL + (now.tv_nsec - since->tv_nsec) / 1000000LL;
}

static int get_int(struct json_object *o, const char *key) {
        struct json_object *v;

        ck_assert_msg(json_object_object_get_ex(o, key, &v), "no key %s", key);
        return json_object_get_int(v);
}

/* ---- simple calls ------------------------------------------------------- */

static void script_simple(int fd) {
        char *req = srv_read(fd);

        CHILD_CHECK(req && streq(req, "{\"method\":\"org.example.Ping\",\"parameters\":{\"x\":1}}"));
        free(req);
        SRV_SEND(fd, "{\"parameters\":{\"pong\":1}}");

        /* Second call on the same connection, no parameters. */
        req = srv_read(fd);
        CHILD_CHECK(req && streq(req, "{\"method\":\"org.example.Ping\",\"parameters\":{}}"));
        free(req);
        SRV_SEND(fd, "{}");     /* a reply may omit parameters */
        srv_wait_eof(fd);
}

START_TEST(simple_call) {
        Server s = server_start(script_simple);
        struct json_object *p = json_object_new_object(), *out = NULL;
        char *error = (char *) "unset";

        json_object_object_add(p, "x", json_object_new_int(1));
        ck_assert_int_eq(varlink_client_call(s.client, "org.example.Ping", p, &out, &error), 0);
        ck_assert_ptr_null(error);
        ck_assert_int_eq(get_int(out, "pong"), 1);
        json_object_put(out);
        /* Parameters are borrowed. */
        ck_assert_int_eq(json_object_put(p), 1);

        out = NULL;
        ck_assert_int_eq(varlink_client_call(s.client, "org.example.Ping", NULL, &out, &error), 0);
        ck_assert_ptr_null(error);
        ck_assert_ptr_nonnull(out);
        ck_assert_int_eq(json_object_object_length(out), 0);
        json_object_put(out);

        server_finish(&s);
}
END_TEST

static void script_error(int fd) {
        srv_expect(fd, "\"method\":\"org.example.Get\"", NULL);
        SRV_SEND(fd, "{\"error\":\"org.example.NotFound\",\"parameters\":{\"name\":\"x\"}}");
        srv_expect(fd, "\"method\":\"org.example.Get\"", NULL);
        SRV_SEND(fd, "{\"error\":\"org.example.NotFound\"}");
        srv_wait_eof(fd);
}

START_TEST(error_reply) {
        Server s = server_start(script_error);
        struct json_object *out = NULL;
        char *error = NULL;

        ck_assert_int_eq(varlink_client_call(s.client, "org.example.Get", NULL, &out, &error), 0);
        ck_assert_str_eq(error, "org.example.NotFound");
        ck_assert_str_eq(json_object_get_string(json_object_object_get(out, "name")), "x");
        free(error);
        json_object_put(out);

        /* Without a place for the error name it becomes -EREMOTEIO. */
        ck_assert_int_eq(varlink_client_call(s.client, "org.example.Get", NULL, NULL, NULL), -EREMOTEIO);

        server_finish(&s);
}
END_TEST

/* ---- more ----------------------------------------------------------------- */

typedef struct Collected {
        int n;
        int values[16];
        bool continues[16];
        char *error;
        int stop_at;            /* return -ECANCELED on this reply (1-based) */
} Collected;

static int collect(VarlinkClient *c, const VarlinkReply *reply, void *userdata) {
        Collected *col = userdata;
        struct json_object *v;

        ck_assert_ptr_nonnull(c);
        ck_assert_int_lt(col->n, 16);
        col->values[col->n] = json_object_object_get_ex(reply->parameters, "i", &v) ? json_object_get_int(v) : -1;
        col->continues[col->n] = reply->continues;
        if (reply->error) {
                free(col->error);
                col->error = strdup(reply->error);
        }
        col->n++;
        return col->n == col->stop_at ? -ECANCELED : 0;
}

static void script_more(int fd) {
        /* Three "continues" replies, one per write, then the last. */
        srv_expect(fd, "\"method\":\"org.example.List\"", "\"more\":true", NULL);
        SRV_SEND(fd, "{\"parameters\":{\"i\":1},\"continues\":true}");
        usleep(10000);
        SRV_SEND(fd, "{\"parameters\":{\"i\":2},\"continues\":true}");
        usleep(10000);
        SRV_SEND(fd, "{\"parameters\":{\"i\":3},\"continues\":true}");
        usleep(10000);
        SRV_SEND(fd, "{\"parameters\":{\"i\":4}}");

        /* The same, all in a single write. */
        srv_expect(fd, "\"more\":true", NULL);
        SRV_SEND(fd, "{\"parameters\":{\"i\":1},\"continues\":true}\0"
                     "{\"parameters\":{\"i\":2},\"continues\":true}\0"
                     "{\"parameters\":{\"i\":3},\"continues\":true}\0"
                     "{\"parameters\":{\"i\":4}}");

        /* An error ends the stream, even one claiming to continue. */
        srv_expect(fd, "\"more\":true", NULL);
        SRV_SEND(fd, "{\"parameters\":{\"i\":1},\"continues\":true}\0"
                     "{\"error\":\"org.example.Gone\",\"continues\":true}");

        /* The client stops after the second reply. */
        srv_expect(fd, "\"more\":true", NULL);
        SRV_SEND(fd, "{\"parameters\":{\"i\":1},\"continues\":true}\0"
                     "{\"parameters\":{\"i\":2},\"continues\":true}\0"
                     "{\"parameters\":{\"i\":3},\"continues\":true}");
        srv_wait_eof(fd);
}

START_TEST(call_more) {
        Server s = server_start(script_more);
        Collected col = {};

        for (int round = 0; round < 2; round++) {
                col = (Collected) {};
                ck_assert_int_eq(varlink_client_call_more(s.client, "org.example.List", NULL, collect, &col), 0);
                ck_assert_int_eq(col.n, 4);
                for (int i = 0; i < 4; i++) {
                        ck_assert_int_eq(col.values[i], i + 1);
                        ck_assert(col.continues[i] == (i < 3));
                }
                ck_assert_ptr_null(col.error);
        }

        col = (Collected) {};
        ck_assert_int_eq(varlink_client_call_more(s.client, "org.example.List", NULL, collect, &col), 0);
        ck_assert_int_eq(col.n, 2);
        ck_assert_str_eq(col.error, "org.example.Gone");
        free(col.error);

        col = (Collected) { .stop_at = 2 };
        ck_assert_int_eq(varlink_client_call_more(s.client, "org.example.List", NULL, collect, &col), -ECANCELED);
        ck_assert_int_eq(col.n, 2);
        /* Reply 3 is still in flight: the connection can't be reused. */
        ck_assert_int_eq(varlink_client_call(s.client, "org.example.List", NULL, NULL, NULL), -ENOTCONN);

        server_finish(&s);
}
END_TEST

/* ---- oneway ---------------------------------------------------------------- */

static void script_oneway(int fd) {
        srv_expect(fd, "\"method\":\"org.example.Fire\"", "\"oneway\":true", NULL);
        /* No reply to that; the next call gets one. */
        srv_expect(fd, "\"method\":\"org.example.Ping\"", NULL);
        SRV_SEND(fd, "{\"parameters\":{\"n\":2}}");
        srv_wait_eof(fd);
}

START_TEST(oneway) {
        Server s = server_start(script_oneway);
        struct json_object *out = NULL;
        char *error = NULL;

        ck_assert_int_eq(varlink_client_call_oneway(s.client, "org.example.Fire", NULL), 0);
        ck_assert_int_eq(varlink_client_call(s.client, "org.example.Ping", NULL, &out, &error), 0);
        ck_assert_ptr_null(error);
        ck_assert_int_eq(get_int(out, "n"), 2);
        json_object_put(out);

        server_finish(&s);
}
END_TEST

/* ---- failures ---------------------------------------------------------------- */

static void script_silent(int fd) {
        srv_expect(fd, "org.example.Slow", NULL);
        srv_wait_eof(fd);
}

START_TEST(timeout) {
        Server s = server_start(script_silent);
        struct timespec start;
        long long ms;

        varlink_client_set_timeout(s.client, 200);
        clock_gettime(CLOCK_MONOTONIC, &start);
        ck_assert_int_eq(varlink_client_call(s.client, "org.example.Slow", NULL, NULL, NULL), -ETIMEDOUT);
        ms = elapsed_ms(&start);
        ck_assert_int_ge(ms, 150);
        ck_assert_int_lt(ms, 5000);
        /* A late reply would be taken for the next call's: refuse. */
        ck_assert_int_eq(varlink_client_call(s.client, "org.example.Slow", NULL, NULL, NULL), -ENOTCONN);

        server_finish(&s);
}
END_TEST

/* Never reads: the client's send must time out too, and not hang. */
static void script_deaf(int fd) {
        (void) fd;
        for (;;)
                pause();
}

START_TEST(send_timeout) {
        Server s = server_start(script_deaf);
        struct json_object *p = json_object_new_object();
        size_t n = 8U * 1024U * 1024U;
        char *big = malloc(n + 1);

        memset(big, 'x', n);
        big[n] = 0;
        json_object_object_add(p, "blob", json_object_new_string(big));
        free(big);

        varlink_client_set_timeout(s.client, 200);
        ck_assert_int_eq(varlink_client_call(s.client, "org.example.Put", p, NULL, NULL), -ETIMEDOUT);
        ck_assert_int_eq(varlink_client_call_oneway(s.client, "org.example.Put", NULL), -ENOTCONN);
        json_object_put(p);

        server_kill(&s);
}
END_TEST

static void script_hangup(int fd) {
        srv_expect(fd, "org.example.Die", NULL);
}

static void script_hangup_mid_reply(int fd) {
        srv_expect(fd, "org.example.Die", NULL);
        srv_write(fd, "{\"parameters\":", 14);
}

START_TEST(hangup) {
        Server s = server_start(script_hangup);

        ck_assert_int_eq(varlink_client_call(s.client, "org.example.Die", NULL, NULL, NULL), -ECONNRESET);
        server_finish(&s);

        s = server_start(script_hangup_mid_reply);
        ck_assert_int_eq(varlink_client_call(s.client, "org.example.Die", NULL, NULL, NULL), -ECONNRESET);
        server_finish(&s);
}
END_TEST

static void script_gone(int fd) {
        (void) fd;
}

/* Writing to a closed peer: EPIPE as -ECONNRESET, no SIGPIPE. */
START_TEST(send_after_hangup) {
        Server s = server_start(script_gone);
        int status;

        ck_assert_int_eq(waitpid(s.pid, &status, 0), s.pid);
        ck_assert_int_eq(varlink_client_call_oneway(s.client, "org.example.Ping", NULL), -ECONNRESET);
        varlink_client_free(s.client);
}
END_TEST

static void script_garbage(int fd) {
        srv_expect(fd, "org.example.A", NULL);
        SRV_SEND(fd, "this is not json");
        srv_wait_eof(fd);
}

static void script_not_object(int fd) {
        srv_expect(fd, "org.example.A", NULL);
        SRV_SEND(fd, "{\"parameters\":[1]}");
        srv_wait_eof(fd);
}

static void script_huge(int fd) {
        char junk[100];

        srv_expect(fd, "org.example.A", NULL);
        memset(junk, ' ', sizeof(junk));
        srv_write(fd, junk, sizeof(junk));
        srv_wait_eof(fd);
}

START_TEST(bad_replies) {
        Server s = server_start(script_garbage);

        ck_assert_int_eq(varlink_client_call(s.client, "org.example.A", NULL, NULL, NULL), -EBADMSG);
        server_finish(&s);

        s = server_start(script_not_object);
        ck_assert_int_eq(varlink_client_call(s.client, "org.example.A", NULL, NULL, NULL), -EBADMSG);
        server_finish(&s);

        s = server_start(script_huge);
        varlink_client_set_max_message(s.client, 16);
        ck_assert_int_eq(varlink_client_call(s.client, "org.example.A", NULL, NULL, NULL), -EMSGSIZE);
        server_finish(&s);
}
END_TEST

/* ---- framing ------------------------------------------------------------------ */

static void script_split(int fd) {
        static const char reply[] = "{\"parameters\":{\"v\":\"split \xc3\xa9\"}}";

        srv_expect(fd, "org.example.Split", NULL);
        /* Byte by byte, the UTF-8 sequence and the NUL included. */
        for (size_t i = 0; i < sizeof(reply); i++) {
                srv_write(fd, reply + i, 1);
                usleep(1000);
        }

        /* A plain call answered with a (bogus) stream: the last one counts.
         * Coalesced with the start of nothing else. */
        srv_expect(fd, "org.example.Split", NULL);
        SRV_SEND(fd, "{\"parameters\":{\"v\":\"1\"},\"continues\":true}\0{\"parameters\":{\"v\":\"2\"}}");

        /* A reply split across two writes at an awkward point. */
        srv_expect(fd, "org.example.Split", NULL);
        srv_write(fd, "{\"parameters\":{\"v\":\"", 20);
        usleep(20000);
        SRV_SEND(fd, "3\"}}");
        srv_wait_eof(fd);
}

START_TEST(split_and_coalesced) {
        Server s = server_start(script_split);
        struct json_object *out = NULL;
        char *error = NULL;

        varlink_client_set_timeout(s.client, 10000);
        ck_assert_int_eq(varlink_client_call(s.client, "org.example.Split", NULL, &out, &error), 0);
        ck_assert_str_eq(json_object_get_string(json_object_object_get(out, "v")), "split \xc3\xa9");
        json_object_put(out);

        ck_assert_int_eq(varlink_client_call(s.client, "org.example.Split", NULL, &out, &error), 0);
        ck_assert_str_eq(json_object_get_string(json_object_object_get(out, "v")), "2");
        json_object_put(out);

        ck_assert_int_eq(varlink_client_call(s.client, "org.example.Split", NULL, &out, &error), 0);
        ck_assert_str_eq(json_object_get_string(json_object_object_get(out, "v")), "3");
        json_object_put(out);
        ck_assert_ptr_null(error);

        server_finish(&s);
}
END_TEST

/* ---- connecting ----------------------------------------------------------------- */

static void expect_connect(int listener, const char *address) {
        VarlinkClient *c = NULL;
        int fd;

        ck_assert_msg(varlink_client_connect(address, &c) == 0, "connect %s", address);
        ck_assert_int_ne(fcntl(varlink_client_fd(c), F_GETFD) & FD_CLOEXEC, 0);
        fd = accept(listener, NULL, NULL);
        ck_assert_int_ge(fd, 0);
        close(fd);
        varlink_client_free(c);
}

START_TEST(connect_addresses) {
        char dir[] = "/tmp/check-varlink-client-XXXXXX", path[128], address[160], abstract[64];
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        VarlinkClient *c = NULL;
        char longpath[200];
        int fd;

        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/sock", dir);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        strcpy(sa.sun_path, path);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(fd, 8), 0);

        snprintf(address, sizeof(address), "unix:%s", path);
        expect_connect(fd, address);
        expect_connect(fd, path);
        snprintf(address, sizeof(address), "unix:%s;mode=0666", path);
        expect_connect(fd, address);
        close(fd);
        unlink(path);
        ck_assert_int_eq(varlink_client_connect(address, &c), -ENOENT);
        rmdir(dir);

        /* Abstract namespace. */
        snprintf(abstract, sizeof(abstract), "kvmid-check-%ld", (long) getpid());
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        memset(sa.sun_path, 0, sizeof(sa.sun_path));
        memcpy(sa.sun_path + 1, abstract, strlen(abstract));
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &sa,
                              (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + strlen(abstract))), 0);
        ck_assert_int_eq(listen(fd, 8), 0);
        snprintf(address, sizeof(address), "unix:@%s", abstract);
        expect_connect(fd, address);
        close(fd);

        /* Bad addresses. */
        ck_assert_int_eq(varlink_client_connect("", &c), -EINVAL);
        ck_assert_int_eq(varlink_client_connect(NULL, &c), -EINVAL);
        ck_assert_int_eq(varlink_client_connect("relative/path", &c), -EINVAL);
        ck_assert_int_eq(varlink_client_connect("unix:", &c), -EINVAL);
        ck_assert_int_eq(varlink_client_connect("unix:@", &c), -EINVAL);
        ck_assert_int_eq(varlink_client_connect("tcp:127.0.0.1:1", &c), -EINVAL);
        memset(longpath, 'a', sizeof(longpath) - 1);
        longpath[0] = '/';
        longpath[sizeof(longpath) - 1] = 0;
        ck_assert_int_eq(varlink_client_connect(longpath, &c), -ENAMETOOLONG);
        ck_assert_ptr_null(c);

        ck_assert_int_eq(varlink_client_new_from_fd(-1, &c), -EBADF);
        ck_assert_ptr_null(c);
        ck_assert_ptr_null(varlink_client_free(NULL));
}
END_TEST

static void script_bad_method(int fd) {
        srv_expect(fd, "org.example.Ok", NULL);
        SRV_SEND(fd, "{\"parameters\":{}}");
        srv_wait_eof(fd);
}

/* A bad method name is refused before anything is sent. */
START_TEST(bad_method) {
        Server s = server_start(script_bad_method);
        struct json_object *arr = json_object_new_array();

        ck_assert_int_eq(varlink_client_call(s.client, "nope", NULL, NULL, NULL), -EINVAL);
        ck_assert_int_eq(varlink_client_call_oneway(s.client, "org.example.ok", NULL), -EINVAL);
        ck_assert_int_eq(varlink_client_call(s.client, "org.example.Ok", arr, NULL, NULL), -EINVAL);
        ck_assert_int_eq(varlink_client_call(s.client, "org.example.Ok", NULL, NULL, NULL), 0);
        json_object_put(arr);
        server_finish(&s);
}
END_TEST

static Suite *client_suite(void) {
        Suite *s = suite_create("varlink-client");
        TCase *tc;

        tc = tcase_create("calls");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, simple_call);
        tcase_add_test(tc, error_reply);
        tcase_add_test(tc, call_more);
        tcase_add_test(tc, oneway);
        tcase_add_test(tc, bad_method);
        suite_add_tcase(s, tc);

        tc = tcase_create("failures");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, timeout);
        tcase_add_test(tc, send_timeout);
        tcase_add_test(tc, hangup);
        tcase_add_test(tc, send_after_hangup);
        tcase_add_test(tc, bad_replies);
        suite_add_tcase(s, tc);

        tc = tcase_create("framing");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, split_and_coalesced);
        suite_add_tcase(s, tc);

        tc = tcase_create("connect");
        tcase_add_test(tc, connect_addresses);
        suite_add_tcase(s, tc);

        return s;
}

int main(void) {
        SRunner *sr = srunner_create(client_suite());
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
