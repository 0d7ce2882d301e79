/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One simulated VM: QEMU's side of the connection (connect, handshake,
 * cookie check), then the byte stream the kernel speaks KVMI on.  Messages
 * are framed with kvmi_frame_check() over partial reads; every message goes
 * out header + body in one write.  A closed VM keeps its counters for the
 * report; it is freed only at exit. */

#include <endian.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <event2/buffer.h>
#include <openssl/evp.h>

#include "sim.h"

#define VM_IN_INITIAL           (16U * 1024U)
#define VM_IN_MAX               (KVMI_HANDSHAKE_MAX_SIZE + SIM_MSG_MAX)
#define VM_RETRY_MS             20
#define VM_SETTLE_MS            200
#define VM_COOKIE_MAX           (64U * 1024U)
#define VM_WRONG_SECRET         "kvmi-sim: deliberately not the domain's secret"

const char *vm_state_to_string(VmState st) {
        switch (st) {
        case VM_IDLE:
                return "idle";
        case VM_CONNECTING:
                return "connecting";
        case VM_HANDSHAKE:
                return "handshake";
        case VM_KERNEL:
                return "connected";
        case VM_CLOSED:
                return "closed";
        }
        return "?";
}

/* ---- specs ------------------------------------------------------------------- */

int vm_spec_parse(const char *arg, SimVmSpec *ret, char *why, size_t whylen) {
        SimVmSpec spec = {};
        const char *c1 = strchr(arg, ','), *c2;
        char uuid[64];
        size_t len;

        if (!c1 || c1 == arg) {
                snprintf(why, whylen, "expected NAME,UUID[,COOKIEFILE], got \"%s\"", arg);
                return -EINVAL;
        }
        if ((size_t) (c1 - arg) >= sizeof spec.name) {
                snprintf(why, whylen, "VM name longer than %d bytes", SIM_NAME_MAX - 1);
                return -EINVAL;
        }
        memcpy(spec.name, arg, (size_t) (c1 - arg));
        c2 = strchr(c1 + 1, ',');
        len = c2 ? (size_t) (c2 - c1 - 1) : strlen(c1 + 1);
        if (len >= sizeof uuid || (memcpy(uuid, c1 + 1, len), uuid[len] = '\0', util_uuid_parse(uuid, spec.uuid) < 0)) {
                snprintf(why, whylen, "VM \"%s\": bad UUID (want 8-4-4-4-12 hex digits)", spec.name);
                return -EINVAL;
        }
        util_uuid_format(spec.uuid, spec.uuid_str);
        if (c2 && c2[1] != '\0') {
                spec.cookie_file = strdup(c2 + 1);
                if (!spec.cookie_file)
                        return -ENOMEM;
        }
        *ret = spec;
        return 0;
}

void vm_spec_done(SimVmSpec *spec) {
        spec->cookie_file = mfree(spec->cookie_file);
}

/* ---- lifetime ------------------------------------------------------------------- */

static void vm_on_settle(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata);
static void vm_on_unhook_timeout(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata);
static void vm_on_retry(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata);

SimVm *vm_new(Sim *s, const SimVmSpec *spec) {
        SimVm *vm = calloc(1, sizeof *vm);

        if (!vm)
                return NULL;
        vm->sim = s;
        vm->spec = *spec;
        vm->spec.cookie_file = spec->cookie_file ? strdup(spec->cookie_file) : NULL;
        vm->fd = -EBADF;
        vm->unhook_closed = -1;
        vm->next_seq = 1;
        vm->nvcpus = (uint16_t) s->o.vcpus;
        vm->vcpus = calloc(vm->nvcpus, sizeof *vm->vcpus);
        vm->in_cap = VM_IN_INITIAL;
        vm->in = malloc(vm->in_cap);
        vm->out = evbuffer_new();
        vm->ev_retry = evtimer_new(s->base, vm_on_retry, vm);
        vm->ev_settle = evtimer_new(s->base, vm_on_settle, vm);
        vm->ev_unhook = evtimer_new(s->base, vm_on_unhook_timeout, vm);
        if (!vm->vcpus || !vm->in || !vm->out || !vm->ev_retry || !vm->ev_settle || !vm->ev_unhook ||
            (spec->cookie_file && !vm->spec.cookie_file)) {
                vm_free(vm);
                return NULL;
        }
        for (unsigned i = 0; i < vm->nvcpus; i++) {
                vm->vcpus[i].vm = vm;
                vm->vcpus[i].index = (uint16_t) i;
        }
        return vm;
}

void vm_free(SimVm *vm) {
        if (!vm)
                return;
        mis_free(vm);
        for (unsigned i = 0; vm->vcpus && i < vm->nvcpus; i++)
                if (vm->vcpus[i].ev_tick)
                        event_free(vm->vcpus[i].ev_tick);
        if (vm->ev_read)
                event_free(vm->ev_read);
        if (vm->ev_write)
                event_free(vm->ev_write);
        if (vm->ev_retry)
                event_free(vm->ev_retry);
        if (vm->ev_settle)
                event_free(vm->ev_settle);
        if (vm->ev_unhook)
                event_free(vm->ev_unhook);
        if (vm->out)
                evbuffer_free(vm->out);
        safe_close(vm->fd);
        util_latvec_free(&vm->lat);
        vm_spec_done(&vm->spec);
        free(vm->vcpus);
        free(vm->in);
        free(vm);
}

void vm_error(SimVm *vm, const char *fmt, ...) {
        char msg[SIM_ERR_LEN];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        vm->errors++;
        if (!vm->first_error[0])
                snprintf(vm->first_error, sizeof vm->first_error, "%s", msg);
        util_log(vm->sim, "%s: error: %s", vm->spec.name, msg);
}

void vm_close(SimVm *vm, bool by_peer, const char *fmt, ...) {
        va_list ap;

        if (vm->state == VM_CLOSED)
                return;
        va_start(ap, fmt);
        vsnprintf(vm->close_reason, sizeof vm->close_reason, fmt, ap);
        va_end(ap);
        util_log(vm->sim, "%s: closed (%s): %s", vm->spec.name, by_peer ? "by kvmid" : "by us", vm->close_reason);
        if (!vm->handshake[0])
                snprintf(vm->handshake, sizeof vm->handshake, "%s", vm->close_reason);
        vm->state = VM_CLOSED;
        vm->closed_by_peer = by_peer;
        vm->closed_ns = util_now_ns();
        if (vm->ev_read)
                event_del(vm->ev_read);
        if (vm->ev_write)
                event_del(vm->ev_write);
        event_del(vm->ev_retry);
        event_del(vm->ev_settle);
        for (unsigned i = 0; i < vm->nvcpus; i++)
                if (vm->vcpus[i].ev_tick)
                        event_del(vm->vcpus[i].ev_tick);
        vm->fd = safe_close(vm->fd);
        (void) evbuffer_drain(vm->out, evbuffer_get_length(vm->out));
        kernel_tokens_clear(&vm->tokens);       /* the kernel drops them with the channel */
        job_vm_closed(vm);
        if (vm->unhook_sent && vm->unhook_closed == 0 && evtimer_pending(vm->ev_unhook, NULL)) {
                event_del(vm->ev_unhook);
                vm->unhook_closed = by_peer;
                sim_vm_notify(vm, VM_NOTE_UNHOOK_DONE);
        }
        sim_vm_notify(vm, VM_NOTE_CLOSED);
}

/* ---- output ----------------------------------------------------------------------- */

static void vm_on_write(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata) {
        SimVm *vm = userdata;

        while (vm->state != VM_CLOSED && evbuffer_get_length(vm->out) > 0) {
                int n = evbuffer_write(vm->out, vm->fd);
                if (n > 0)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return;
                vm_close(vm, true, "write failed: %s", n < 0 ? strerror(errno) : "EOF");
                return;
        }
        if (vm->state != VM_CLOSED)
                event_del(vm->ev_write);
}

/* One message (or deliberately broken bytes) in one write; what the socket
 * does not take now is queued behind it. */
int vm_send(SimVm *vm, const void *buf, size_t len) {
        ssize_t n = 0;

        if (vm->state == VM_CLOSED || vm->fd < 0)
                return -ENOTCONN;
        if (evbuffer_get_length(vm->out) == 0) {
                n = send(vm->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno != EAGAIN && errno != EINTR) {
                                int r = -errno;
                                vm_close(vm, true, "write failed: %s", strerror(errno));
                                return r;
                        }
                        n = 0;
                }
                if ((size_t) n == len)
                        return 0;
        }
        if (evbuffer_add(vm->out, (const uint8_t *) buf + n, len - (size_t) n) < 0)
                return -ENOMEM;
        event_add(vm->ev_write, NULL);
        return 0;
}

/* ---- handshake --------------------------------------------------------------------- */

static int vm_cookie_hash(const SimVm *vm, uint8_t ret[KVMI_COOKIE_HASH_SIZE], char *why, size_t whylen) {
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_close_ int fd = -EBADF;
        unsigned int mdlen = 0;
        size_t len = 0;
        struct stat st;

        if (mis_handshake_wrong(vm)) {
                data = (uint8_t *) strdup(VM_WRONG_SECRET);
                if (!data)
                        return -ENOMEM;
                len = strlen(VM_WRONG_SECRET);
        } else {
                fd = open(vm->spec.cookie_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t) VM_COOKIE_MAX) {
                        snprintf(why, whylen, "cannot read cookie file \"%s\": %s", vm->spec.cookie_file,
                                 fd < 0 ? strerror(errno) : "not a regular file of at most 64 KiB");
                        return -EIO;
                }
                data = malloc((size_t) st.st_size + 1);
                if (!data)
                        return -ENOMEM;
                while (len < (size_t) st.st_size) {
                        ssize_t n = read(fd, data + len, (size_t) st.st_size - len);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n <= 0) {
                                snprintf(why, whylen, "cannot read cookie file \"%s\"", vm->spec.cookie_file);
                                return -EIO;
                        }
                        len += (size_t) n;
                }
        }
        /* Byte for byte, as QEMU's secret object holds it. */
        if (!EVP_Digest(data, len, ret, &mdlen, EVP_sha1(), NULL) || mdlen != KVMI_COOKIE_HASH_SIZE) {
                snprintf(why, whylen, "SHA-1 failed");
                return -EIO;
        }
        return 0;
}

/* --handshake-size N: a newer QEMU's longer struct (the tail zero), or an
 * older, shorter one (the name cut to what fits; 32: no name at all). */
static void vm_send_handshake(SimVm *vm) {
        KvmiQemu2Introspector h = { .struct_size = vm->sim->o.handshake_size,
                                    .cpu_type = vm->sim->o.cpu_type,
                                    .start_time = (int64_t) time(NULL) };
        _cleanup_free_ uint8_t *buf = malloc(h.struct_size);
        int n;

        if (!buf) {
                vm_close(vm, false, "out of memory");
                return;
        }
        memcpy(h.uuid, vm->spec.uuid, sizeof h.uuid);
        snprintf(h.name, sizeof h.name, "%s", vm->spec.name);
        n = kvmi_qemu2introspector_encode(buf, h.struct_size, &h);
        if (n < 0) {
                vm_close(vm, false, "cannot encode the handshake: %s", kvmi_strerror(n));
                return;
        }
        vm->state = VM_HANDSHAKE;
        (void) vm_send(vm, buf, (size_t) n);
}

/* QEMU: compare, and on mismatch close before handing the socket to KVM. */
static int vm_handshake_reply(SimVm *vm, const uint8_t *p, size_t len) {
        uint8_t want[KVMI_COOKIE_HASH_SIZE];
        KvmiIntrospector2Qemu h;
        char why[SIM_ERR_LEN];
        int r;

        r = kvmi_introspector2qemu_decode(p, len, &h);
        if (r < 0) {
                snprintf(vm->handshake, sizeof vm->handshake, "bad handshake reply: %s", kvmi_strerror(r));
                vm_close(vm, false, "%s", vm->handshake);
                return r;
        }
        memcpy(vm->cookie_hash, h.cookie_hash, sizeof vm->cookie_hash);
        vm->got_cookie_hash = true;
        sim_vm_notify(vm, VM_NOTE_HANDSHAKE_REPLY);
        if (vm->state == VM_CLOSED)
                return -ECONNRESET;
        if (vm->spec.cookie_file || mis_handshake_wrong(vm)) {
                if (vm_cookie_hash(vm, want, why, sizeof why) < 0) {
                        snprintf(vm->handshake, sizeof vm->handshake, "%s", why);
                        vm_close(vm, false, "%s", why);
                        return -EIO;
                }
                if (memcmp(want, h.cookie_hash, sizeof want) != 0) {
                        snprintf(vm->handshake, sizeof vm->handshake, "cookie mismatch");
                        vm_close(vm, false, "cookie mismatch");
                        return -EPERM;
                }
        }
        snprintf(vm->handshake, sizeof vm->handshake, "ok");
        vm->state = VM_KERNEL;
        util_log(vm->sim, "%s: handshake ok, KVM takes the socket", vm->spec.name);
        return r;
}

/* ---- input ------------------------------------------------------------------------- */

static void vm_process(SimVm *vm) {
        size_t off = 0;
        int r;

        while (vm->state != VM_CLOSED && off < vm->in_len) {
                const uint8_t *p = vm->in + off;
                size_t avail = vm->in_len - off;
                KvmiMsgHdr h;

                if (vm->state == VM_HANDSHAKE) {
                        r = kvmi_handshake_frame_check(p, avail, KVMI_INTROSPECTOR2QEMU_SIZE);
                        if (r == 0)
                                break;
                        if (r < 0) {
                                snprintf(vm->handshake, sizeof vm->handshake, "bad handshake reply: %s",
                                         kvmi_strerror(r));
                                vm_close(vm, false, "%s", vm->handshake);
                                return;
                        }
                        r = vm_handshake_reply(vm, p, avail);
                        if (r < 0)
                                return;
                        off += (size_t) r;
                        continue;
                }
                if (vm->state != VM_KERNEL) {
                        vm_error(vm, "%zu unexpected bytes before the handshake", avail);
                        vm_close(vm, false, "kvmid wrote before the handshake");
                        return;
                }
                /* What the kernel accepts from the introspector: the limit it reported. */
                r = kvmi_frame_check(p, avail, kernel_max_msg(vm->sim), &h);
                if (r < 0) {
                        KvmiMsgHdr bad = {};
                        (void) kvmi_msg_hdr_decode(p, avail, &bad);
                        vm_error(vm, "kvmid sent a message of %u bytes (id %u), over the %" PRIu32 " byte limit",
                                 bad.size, bad.id, kernel_max_msg(vm->sim));
                        vm_close(vm, false, "oversized message from kvmid");
                        return;
                }
                if (r == 0)
                        break;
                kernel_handle(vm, &h, p, (size_t) r);
                off += (size_t) r;
        }
        if (vm->state == VM_CLOSED)
                return;
        memmove(vm->in, vm->in + off, vm->in_len - off);
        vm->in_len -= off;
}

/* QEMU reads exactly the handshake reply, then hands the socket to KVM:
 * what kvmid sent after it stays queued (and is lost if QEMU closes). */
static size_t vm_read_size(const SimVm *vm) {
        size_t room = vm->in_cap - vm->in_len, want;

        if (vm->state != VM_HANDSHAKE)
                return room;
        want = KVMI_INTROSPECTOR2QEMU_SIZE;
        if (vm->in_len >= sizeof(uint32_t)) {
                uint32_t size;
                memcpy(&size, vm->in, sizeof size);
                size = le32toh(size);
                if (size > want && size <= KVMI_HANDSHAKE_MAX_SIZE)
                        want = size;
        }
        return want > vm->in_len ? MIN(want - vm->in_len, room) : 1;
}

static void vm_on_read(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata) {
        SimVm *vm = userdata;

        for (int i = 0; i < 8 && vm->state != VM_CLOSED; i++) {
                ssize_t n;

                if (vm->in_len == vm->in_cap) {
                        size_t cap = MIN(vm->in_cap * 2, (size_t) VM_IN_MAX);
                        uint8_t *p = cap > vm->in_cap ? realloc(vm->in, cap) : NULL;
                        if (!p) {
                                vm_error(vm, "input buffer full (%zu bytes)", vm->in_len);
                                vm_close(vm, false, "input buffer full");
                                return;
                        }
                        vm->in = p;
                        vm->in_cap = cap;
                }
                n = read(vm->fd, vm->in + vm->in_len, vm_read_size(vm));
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return;
                        /* ECONNRESET: kvmid closed with our bytes unread. */
                        vm_close(vm, true, "read failed: %s", strerror(errno));
                        return;
                }
                if (n == 0) {
                        if (vm->state == VM_HANDSHAKE)
                                vm_close(vm, true, "closed by kvmid during the handshake (refused)");
                        else if (vm->in_len > 0)
                                vm_close(vm, true, "closed by kvmid in the middle of a message (%zu bytes)",
                                         vm->in_len);
                        else
                                vm_close(vm, true, "closed by kvmid");
                        return;
                }
                vm->in_len += (size_t) n;
                vm->t_read_ns = util_now_ns();
                vm_process(vm);
        }
}

/* ---- connect ------------------------------------------------------------------------ */

static int vm_setup_fd(SimVm *vm, int fd) {
        Sim *s = vm->sim;

        vm->fd = fd;
        vm->ev_read = event_new(s->base, fd, EV_READ | EV_PERSIST, vm_on_read, vm);
        vm->ev_write = event_new(s->base, fd, EV_WRITE | EV_PERSIST, vm_on_write, vm);
        if (!vm->ev_read || !vm->ev_write)
                return -ENOMEM;
        event_add(vm->ev_read, NULL);
        vm->connected_ns = util_now_ns();
        return 0;
}

static void vm_try_connect(SimVm *vm) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        const char *path = vm->sim->o.socket_path;
        int fd, saved;

        if (strlen(path) >= sizeof sa.sun_path) {
                vm_close(vm, false, "socket path too long");
                return;
        }
        memcpy(sa.sun_path, path, strlen(path));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                vm_close(vm, false, "socket: %s", strerror(errno));
                return;
        }
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                saved = errno;
                safe_close(fd);
                vm->connect_errno = saved;
                /* Not listening yet, or the backlog is full: like QEMU's reconnect. */
                if ((saved == ENOENT || saved == ECONNREFUSED || saved == EAGAIN) &&
                    util_now_ns() - vm->connect_start_ns < vm->sim->o.timeout_sec * 1000000000ULL) {
                        struct timeval tv = { .tv_usec = VM_RETRY_MS * 1000 };
                        evtimer_add(vm->ev_retry, &tv);
                        return;
                }
                vm_close(vm, false, "connect to %s: %s", path, strerror(saved));
                return;
        }
        if (vm_setup_fd(vm, fd) < 0) {
                vm_close(vm, false, "out of memory");
                return;
        }
        vm->state = VM_HANDSHAKE;
        util_log(vm->sim, "%s: connected to %s", vm->spec.name, path);
        sim_vm_notify(vm, VM_NOTE_CONNECTED);
        if (vm->state == VM_HANDSHAKE && mis_sends_handshake(vm))
                vm_send_handshake(vm);
}

static void vm_on_retry(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata) {
        vm_try_connect(userdata);
}

void vm_connect(SimVm *vm) {
        vm->state = VM_CONNECTING;
        vm->connect_start_ns = util_now_ns();
        vm_try_connect(vm);
}

/* --floor: the peer is our echo process; no handshake, no probe. */
void vm_attach(SimVm *vm, int fd) {
        vm->connect_start_ns = util_now_ns();
        if (vm_setup_fd(vm, fd) < 0) {
                vm_close(vm, false, "out of memory");
                return;
        }
        vm->floor = true;
        vm->state = VM_KERNEL;
        snprintf(vm->handshake, sizeof vm->handshake, "ok");
        vm->vm_events |= 1U << KVMI_EV_UNHOOK;
        for (unsigned i = 0; i < vm->nvcpus; i++)
                vm->vcpus[i].events |= 1U << KVMI_EV_HYPERCALL;
        vm->probed = true;
}

/* ---- probe, UNHOOK ------------------------------------------------------------------- */

unsigned vm_hypercall_vcpus(const SimVm *vm) {
        unsigned n = 0;

        for (unsigned i = 0; i < vm->nvcpus; i++)
                n += !!(vm->vcpus[i].events & (1U << KVMI_EV_HYPERCALL));
        return n;
}

static void vm_on_settle(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata) {
        SimVm *vm = userdata;

        if (vm->probed || vm->state != VM_KERNEL)
                return;
        vm->probed = true;
        util_log(vm->sim, "%s: probe settled without HYPERCALL", vm->spec.name);
        sim_vm_notify(vm, VM_NOTE_PROBED);
}

/* After each command: probed once HYPERCALL is on for every vCPU; without
 * HYPERCALL support (--no-hypercall), once kvmid has been quiet for a while
 * after GET_GUEST_INFO. */
void vm_check_probed(SimVm *vm) {
        if (vm->probed || vm->state != VM_KERNEL)
                return;
        if (vm->nvcpus > 0 && vm_hypercall_vcpus(vm) == vm->nvcpus) {
                vm->probed = true;
                event_del(vm->ev_settle);
                util_log(vm->sim, "%s: HYPERCALL enabled on all %u vCPUs", vm->spec.name, vm->nvcpus);
                sim_vm_notify(vm, VM_NOTE_PROBED);
                return;
        }
        if (vm->got_guest_info && vm->sim->o.no_hypercall) {
                struct timeval tv = { .tv_usec = VM_SETTLE_MS * 1000 };
                evtimer_add(vm->ev_settle, &tv);
        }
}

static void vm_on_unhook_timeout(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata) {
        SimVm *vm = userdata;

        vm->unhook_closed = 0;
        sim_vm_notify(vm, VM_NOTE_UNHOOK_DONE);
        /* QEMU's unhook wait is over: it closes the socket itself. */
        vm_close(vm, false, "kvmid did not close the channel within %d ms of UNHOOK", SIM_UNHOOK_WAIT_MS);
}

int vm_unhook(SimVm *vm) {
        uint8_t buf[KVMI_MSG_HDR_SIZE + KVMI_EVENT_SIZE];
        struct timeval tv = { .tv_sec = SIM_UNHOOK_WAIT_MS / 1000, .tv_usec = (SIM_UNHOOK_WAIT_MS % 1000) * 1000 };
        int n;

        if (vm->state != VM_KERNEL)
                return -ENOTCONN;
        if (vm->unhook_sent)
                return -EALREADY;
        /* The kernel sends UNHOOK only when the introspector enabled it. */
        if (!(vm->vm_events & (1U << KVMI_EV_UNHOOK)))
                return -EPERM;
        n = job_encode_event(vm, 0, KVMI_EV_UNHOOK, NULL, vm->next_seq++, buf, sizeof buf);
        if (n < 0)
                return n;
        vm->unhook_sent = true;
        vm->unhook_closed = 0;
        vm->unhook_ns = util_now_ns();
        evtimer_add(vm->ev_unhook, &tv);
        util_log(vm->sim, "%s: UNHOOK sent", vm->spec.name);
        return vm_send(vm, buf, (size_t) n);
}
