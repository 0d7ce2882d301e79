/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* make check's stand-in for libFuzzer: runs LLVMFuzzerTestOneInput over
 * every file of the seed corpus, then over a fixed number of deterministic
 * mutations of them (xorshift64*: bit flips, byte inserts and deletes,
 * little-endian integers, splices), and prints TAP.
 *
 *   fuzz-NAME [-n MUTATIONS] [-s SEED] [FILE|DIR...]
 *
 * Without paths it reads FUZZ_CORPUS (the harness's directory under
 * tests/fuzz/corpus/).  A crash or failed check saves the input that
 * caused it as ./NAME.crash, so it can be replayed: fuzz-NAME ./NAME.crash. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "macro.h"

#define DEFAULT_MUTATIONS 20000U
/* Mutations grow an input by a few bytes at a time; this bounds it. */
#define GROWTH_MAX 4096U

typedef struct Seed {
        char *path;
        uint8_t *data;
        size_t size;
} Seed;

static Seed *seeds;
static size_t n_seeds;

/* The input being run, for the crash handlers (set before every run). */
static const uint8_t *current_data;
static size_t current_size;
static char crash_path[256];

static void save_current(void) {
        int fd;

        if (!current_data)
                return;
        fd = open(crash_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
                /* async-signal-safe only: a partial save is still a lead */
                (void) !write(fd, current_data, current_size);
                (void) close(fd);
                (void) !write(STDERR_FILENO, "# input saved to ", 17);
                (void) !write(STDERR_FILENO, crash_path, strlen(crash_path));
                (void) !write(STDERR_FILENO, "\n", 1);
        }
        current_data = NULL;
}

static void on_fatal_signal(int sig) {
        save_current();
        signal(sig, SIG_DFL);
        raise(sig);
}

/* Sanitizers exit through their own path (abort_on_error=0: _exit), not a
 * signal; they call this first when the binary is built with them. */
extern void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

static void run_one(const uint8_t *data, size_t size) {
        current_data = data;
        current_size = size;
        (void) LLVMFuzzerTestOneInput(data, size);
        current_data = NULL;
}

static int read_file(const char *path, uint8_t **ret, size_t *ret_size) {
        uint8_t *buf = NULL;
        size_t size = 0, cap = 0;
        int fd;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        for (;;) {
                ssize_t n;

                if (size == cap) {
                        uint8_t *b;

                        cap = cap ? cap * 2 : 4096;
                        b = realloc(buf, cap);
                        if (!b) {
                                free(buf);
                                (void) close(fd);
                                return -ENOMEM;
                        }
                        buf = b;
                }
                n = read(fd, buf + size, cap - size);
                if (n < 0) {
                        int r = -errno;

                        if (r == -EINTR)
                                continue;
                        free(buf);
                        (void) close(fd);
                        return r;
                }
                if (n == 0)
                        break;
                size += (size_t) n;
        }
        (void) close(fd);
        *ret = buf;
        *ret_size = size;
        return 0;
}

static int add_seed(const char *path) {
        Seed *s;
        int r;

        s = realloc(seeds, (n_seeds + 1) * sizeof(*seeds));
        if (!s)
                return -ENOMEM;
        seeds = s;
        s = &seeds[n_seeds];
        *s = (Seed) {};
        r = read_file(path, &s->data, &s->size);
        if (r < 0)
                return r;
        s->path = strdup(path);
        if (!s->path) {
                free(s->data);
                return -ENOMEM;
        }
        n_seeds++;
        return 0;
}

static int strcmp_ptr(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* A directory's files in strcmp() order, so runs are reproducible. */
static int add_path(const char *path) {
        struct stat st;
        char **names = NULL;
        size_t n = 0;
        struct dirent *de;
        DIR *d;
        int r = 0;

        if (stat(path, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return add_seed(path);

        d = opendir(path);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                char **v;

                if (de->d_name[0] == '.')
                        continue;
                v = realloc(names, (n + 1) * sizeof(*names));
                if (!v) {
                        r = -ENOMEM;
                        break;
                }
                names = v;
                if (asprintf(&names[n], "%s/%s", path, de->d_name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        (void) closedir(d);
        if (r == 0)
                qsort(names, n, sizeof(*names), strcmp_ptr);
        for (size_t i = 0; i < n; i++) {
                if (r == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
                        r = add_seed(names[i]);
                free(names[i]);
        }
        free(names);
        return r;
}

/* ---- Mutations ---------------------------------------------------------- */

static uint64_t rng_seed = 0x9e3779b97f4a7c15ULL, rng;

static uint64_t rnd(void) {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        return rng * 0x2545f4914f6cdd1dULL;
}

static size_t below(size_t n) {
        return n > 0 ? (size_t) (rnd() % n) : 0;
}

/* Bytes every parser here treats specially. */
static const uint8_t interesting_bytes[] = {
        0x00, 0x01, 0x7f, 0x80, 0xff, 0xc0, 0xe2, 0xef, '"', '\\', '\n', '\r', '\t', ' ', '#',
        '{', '}', '[', ']', '(', ')', ':', ',', '=', '*', '?', '-', '.', '0', '9', 'a', 'A',
};

static const uint64_t interesting_ints[] = {
        0, 1, 2, 8, 16, 24, 32, 96, 544, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff,
        0x10000, 4088, 8184, 0x7fffffff, 0x80000000, 0xffffffff, UINT64_MAX,
};

static void insert(uint8_t *buf, size_t *len, size_t pos, const uint8_t *src, size_t n) {
        memmove(buf + pos + n, buf + pos, *len - pos);
        memcpy(buf + pos, src, n);
        *len += n;
}

/* One to four edits of buf[0..*len) in place; buf has room for cap bytes. */
static void mutate(uint8_t *buf, size_t *len, size_t cap) {
        for (size_t k = 1 + below(4); k > 0; k--) {
                size_t pos = below(*len + 1), n;
                uint8_t tmp[64];
                uint64_t v;

                switch (below(8)) {
                case 0: /* flip a bit */
                        if (*len > 0)
                                buf[below(*len)] ^= (uint8_t) (1U << below(8));
                        break;
                case 1: /* an interesting byte in place */
                        if (*len > 0)
                                buf[below(*len)] = interesting_bytes[below(sizeof(interesting_bytes))];
                        break;
                case 2: /* insert a byte, random or interesting */
                        if (*len < cap) {
                                tmp[0] = below(2) ? (uint8_t) rnd() : interesting_bytes[below(sizeof(interesting_bytes))];
                                insert(buf, len, pos, tmp, 1);
                        }
                        break;
                case 3: /* delete a range */
                        if (pos < *len) {
                                n = 1 + below(MIN(16, *len - pos));
                                memmove(buf + pos, buf + pos + n, *len - pos - n);
                                *len -= n;
                        }
                        break;
                case 4: /* duplicate a range of the input elsewhere in it */
                        if (*len > 0) {
                                size_t from = below(*len);

                                n = 1 + below(MIN(sizeof(tmp), *len - from));
                                if (n <= cap - *len) {
                                        memcpy(tmp, buf + from, n);
                                        insert(buf, len, pos, tmp, n);
                                }
                        }
                        break;
                case 5: /* splice in a range of another seed */ {
                        const Seed *s = &seeds[below(n_seeds)];

                        if (s->size > 0) {
                                size_t from = below(s->size);

                                n = 1 + below(MIN(sizeof(tmp), s->size - from));
                                if (n <= cap - *len)
                                        insert(buf, len, pos, s->data + from, n);
                        }
                        break;
                }
                case 6: /* an interesting little-endian integer, 1, 2, 4 or 8 bytes */
                        n = (size_t) 1 << below(4);
                        v = interesting_ints[below(sizeof(interesting_ints) / sizeof(interesting_ints[0]))];
                        if (below(2))
                                v = -v;
                        if (*len >= n) {
                                pos = below(*len - n + 1);
                                for (size_t i = 0; i < n; i++)
                                        buf[pos + i] = (uint8_t) (v >> (8 * i));
                        }
                        break;
                default: /* truncate */
                        *len = pos;
                        break;
                }
        }
}

/* ---- main --------------------------------------------------------------- */

static const char *base_name(const char *path) {
        const char *s = strrchr(path, '/');

        s = s ? s + 1 : path;
        /* libtool's wrapper runs the real binary as lt-NAME */
        return strncmp(s, "lt-", 3) == 0 ? s + 3 : s;
}

int main(int argc, char *argv[]) {
        unsigned long mutations = DEFAULT_MUTATIONS;
        size_t max_size = 0, cap, len = 0;
        uint8_t *buf;
        int opt, r;

        while ((opt = getopt(argc, argv, "n:s:")) >= 0)
                switch (opt) {
                case 'n':
                        mutations = strtoul(optarg, NULL, 0);
                        break;
                case 's':
                        rng_seed = strtoull(optarg, NULL, 0) | 1;
                        break;
                default:
                        fprintf(stderr, "usage: %s [-n MUTATIONS] [-s SEED] [FILE|DIR...]\n", argv[0]);
                        return 2;
                }

        (void) snprintf(crash_path, sizeof(crash_path), "%s.crash", base_name(argv[0]));
        signal(SIGSEGV, on_fatal_signal);
        signal(SIGBUS, on_fatal_signal);
        signal(SIGABRT, on_fatal_signal);
        signal(SIGFPE, on_fatal_signal);
        signal(SIGILL, on_fatal_signal);
        if (__sanitizer_set_death_callback)
                __sanitizer_set_death_callback(save_current);

        rng = rng_seed;
        printf("1..2\n");
        if (optind == argc) {
                r = add_path(FUZZ_CORPUS);
                if (r < 0) {
                        printf("Bail out! %s: %s\n", FUZZ_CORPUS, strerror(-r));
                        return 1;
                }
        }
        for (int i = optind; i < argc; i++) {
                r = add_path(argv[i]);
                if (r < 0) {
                        printf("Bail out! %s: %s\n", argv[i], strerror(-r));
                        return 1;
                }
        }
        if (n_seeds == 0) {
                printf("Bail out! no seed inputs\n");
                return 1;
        }

        for (size_t i = 0; i < n_seeds; i++) {
                run_one(seeds[i].data, seeds[i].size);
                max_size = seeds[i].size > max_size ? seeds[i].size : max_size;
        }
        printf("ok 1 - %zu seed inputs\n", n_seeds);
        fflush(stdout);

        cap = max_size + GROWTH_MAX;
        buf = malloc(cap);
        if (!buf) {
                printf("Bail out! out of memory\n");
                return 1;
        }
        for (unsigned long i = 0; i < mutations; i++) {
                /* Mostly fresh from a seed, sometimes stacked on the last
                 * mutant to get further away from the seeds. */
                if (i == 0 || below(4) != 0 || len + GROWTH_MAX / 2 > cap) {
                        const Seed *s = &seeds[i % n_seeds];

                        memcpy(buf, s->data, s->size);
                        len = s->size;
                }
                mutate(buf, &len, cap);
                run_one(buf, len);
        }
        printf("ok 2 - %lu mutations (seed 0x%llx)\n", mutations, (unsigned long long) rng_seed);

        free(buf);
        for (size_t i = 0; i < n_seeds; i++) {
                free(seeds[i].path);
                free(seeds[i].data);
        }
        free(seeds);
        return 0;
}
