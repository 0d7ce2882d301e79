/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kvmi-sim helpers: clocks, logging, hex, UUIDs, register names, latency
 * vectors and their percentiles. */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "policy.h"
#include "sim.h"

uint64_t util_now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

void util_log(const Sim *s, const char *fmt, ...) {
        va_list ap;

        if (!s || !s->o.verbose)
                return;
        fprintf(stderr, "kvmi-sim[%.3f]: ", (double) (util_now_ns() - s->start_ns) / 1e9);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

/* ---- hex and UUIDs ------------------------------------------------------------ */

void util_hex(const uint8_t *p, size_t n, char *out) {
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[p[i] >> 4];
                out[2 * i + 1] = digits[p[i] & 15];
        }
        out[2 * n] = '\0';
}

static int util_hexval(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int util_unhex(const char *s, uint8_t *out, size_t n) {
        if (!s || strlen(s) != 2 * n)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                int hi = util_hexval(s[2 * i]), lo = util_hexval(s[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                out[i] = (uint8_t) (hi << 4 | lo);
        }
        return 0;
}

/* 8-4-4-4-12 hex digits, as libvirt and QEMU print them. */
int util_uuid_parse(const char *s, uint8_t ret[16]) {
        return policy_uuid_from_string(s, ret);
}

void util_uuid_format(const uint8_t u[16], char out[37]) {
        char hex[33];

        util_hex(u, 16, hex);
        snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* ---- registers ------------------------------------------------------------------ */

static const struct {
        const char *name;
        size_t offset;
} util_regs[SIM_NREGS] = {
        { "rax", offsetof(KvmRegs, rax) }, { "rbx", offsetof(KvmRegs, rbx) },
        { "rcx", offsetof(KvmRegs, rcx) }, { "rdx", offsetof(KvmRegs, rdx) },
        { "rsi", offsetof(KvmRegs, rsi) }, { "rdi", offsetof(KvmRegs, rdi) },
        { "rsp", offsetof(KvmRegs, rsp) }, { "rbp", offsetof(KvmRegs, rbp) },
        { "r8", offsetof(KvmRegs, r8) },   { "r9", offsetof(KvmRegs, r9) },
        { "r10", offsetof(KvmRegs, r10) }, { "r11", offsetof(KvmRegs, r11) },
        { "r12", offsetof(KvmRegs, r12) }, { "r13", offsetof(KvmRegs, r13) },
        { "r14", offsetof(KvmRegs, r14) }, { "r15", offsetof(KvmRegs, r15) },
        { "rip", offsetof(KvmRegs, rip) }, { "rflags", offsetof(KvmRegs, rflags) },
};

int util_reg_index(const char *name) {
        for (int i = 0; i < SIM_NREGS; i++)
                if (strcasecmp(util_regs[i].name, name) == 0)
                        return i;
        return -1;
}

const char *util_reg_name(int index) {
        return index >= 0 && index < SIM_NREGS ? util_regs[index].name : NULL;
}

int util_regs_parse(SimRegs *r, const char *assignment) {
        char name[16], *end;
        const char *eq = strchr(assignment, '=');
        unsigned long long v;
        int i;

        if (!eq || (size_t) (eq - assignment) >= sizeof name || eq[1] == '\0')
                return -EINVAL;
        memcpy(name, assignment, (size_t) (eq - assignment));
        name[eq - assignment] = '\0';
        i = util_reg_index(name);
        if (i < 0)
                return -ENOENT;
        if (eq[1] == '-')
                return -ERANGE;
        errno = 0;
        v = strtoull(eq + 1, &end, 0);
        if (errno != 0 || *end != '\0')
                return -ERANGE;
        r->mask |= 1U << i;
        r->val[i] = v;
        return 0;
}

void util_regs_apply(const SimRegs *r, KvmRegs *regs) {
        for (int i = 0; i < SIM_NREGS; i++)
                if (r->mask & (1U << i))
                        memcpy((char *) regs + util_regs[i].offset, &r->val[i], sizeof(uint64_t));
}

/* ---- latency ------------------------------------------------------------------------ */

int util_latvec_add(LatVec *l, uint64_t ns) {
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 1024;
                uint64_t *v = realloc(l->v, cap * sizeof *v);
                if (!v)
                        return -ENOMEM;
                l->v = v;
                l->cap = cap;
        }
        l->v[l->n++] = ns;
        return 0;
}

void util_latvec_free(LatVec *l) {
        free(l->v);
        *l = (LatVec) {};
}

static int util_cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

/* Nearest-rank percentiles on a sorted copy. */
LatSummary util_latvec_summary(const LatVec *l) {
        LatSummary sum = { .n = l->n };
        uint64_t *v;

        if (l->n == 0)
                return sum;
        v = malloc(l->n * sizeof *v);
        if (!v)
                return sum;
        memcpy(v, l->v, l->n * sizeof *v);
        qsort(v, l->n, sizeof *v, util_cmp_u64);
        sum.p50 = v[(l->n * 50 + 99) / 100 - 1];
        sum.p99 = v[(l->n * 99 + 99) / 100 - 1];
        sum.max = v[l->n - 1];
        free(v);
        return sum;
}

struct json_object *util_json_u64(uint64_t v) {
        return json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t) v);
}

/* {"p50","p99","max"}; null values when nothing was measured. */
struct json_object *util_latency_json(const LatSummary *sum) {
        struct json_object *o = json_object_new_object();

        json_object_object_add(o, "p50", sum->n ? util_json_u64(sum->p50) : NULL);
        json_object_object_add(o, "p99", sum->n ? util_json_u64(sum->p99) : NULL);
        json_object_object_add(o, "max", sum->n ? util_json_u64(sum->max) : NULL);
        return o;
}

double util_rate(uint64_t n, uint64_t start_ns, uint64_t end_ns) {
        if (n == 0 || end_ns <= start_ns)
                return 0.0;
        return (double) n * 1e9 / (double) (end_ns - start_ns);
}
