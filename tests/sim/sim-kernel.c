/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The KVM side of KVMI for one VM: answer kvmid's commands as the kvmi-v7
 * kernel does, keep the per-vCPU event masks, and the map-token table
 * (GET_MAP_TOKEN / KVM_HC_MEM_MAP semantics).  Replies reuse the command's
 * id and seq.  EVENT_REPLYs go to sim-events.c. */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <openssl/rand.h>

#include "sim.h"

/* ---- map tokens ----------------------------------------------------------- */

static void kernel_token_retire(SimTokens *t, unsigned i, bool consumed) {
        SimTokenGone *g = &t->gone[t->gone_next];

        memcpy(g->bytes, t->live[i].bytes, KVMI_MAP_TOKEN_SIZE);
        g->consumed = consumed;
        t->gone_next = (t->gone_next + 1) % SIM_TOKEN_HISTORY;
        if (t->n_gone < SIM_TOKEN_HISTORY)
                t->n_gone++;
        t->live[i] = t->live[--t->n_live];
}

/* The kernel sweeps once a second; here a token is dead exactly at 3 s. */
void kernel_tokens_sweep(SimTokens *t, uint64_t now) {
        for (unsigned i = 0; i < t->n_live;)
                if (now - t->live[i].created_ns >= SIM_TOKEN_TTL_NS)
                        kernel_token_retire(t, i, false);
                else
                        i++;
}

int kernel_token_mint(SimTokens *t, uint64_t now, KvmiMapToken *ret) {
        SimToken *tok;

        kernel_tokens_sweep(t, now);
        if (t->n_live >= SIM_TOKENS_MAX) {
                t->refused++;
                return -KVM_EAGAIN;
        }
        tok = &t->live[t->n_live];
        if (RAND_bytes(tok->bytes, KVMI_MAP_TOKEN_SIZE) != 1)
                return -KVM_ENOMEM;
        tok->created_ns = now;
        t->n_live++;
        t->minted++;
        memcpy(ret->bytes, tok->bytes, KVMI_MAP_TOKEN_SIZE);
        return 0;
}

/* What KVM_HC_MEM_MAP does with the token it is given. */
TokenRedeem kernel_token_redeem(SimTokens *t, const uint8_t bytes[KVMI_MAP_TOKEN_SIZE], uint64_t now) {
        kernel_tokens_sweep(t, now);
        for (unsigned i = 0; i < t->n_live; i++)
                if (memcmp(t->live[i].bytes, bytes, KVMI_MAP_TOKEN_SIZE) == 0) {
                        kernel_token_retire(t, i, true);
                        t->redeemed++;
                        return TOKEN_OK;
                }
        for (unsigned i = 0; i < t->n_gone; i++)
                if (memcmp(t->gone[i].bytes, bytes, KVMI_MAP_TOKEN_SIZE) == 0)
                        return t->gone[i].consumed ? TOKEN_CONSUMED : TOKEN_EXPIRED;
        return TOKEN_UNKNOWN;
}

const char *kernel_token_redeem_to_string(TokenRedeem r) {
        switch (r) {
        case TOKEN_OK:
                return "ok";
        case TOKEN_UNKNOWN:
                return "unknown";
        case TOKEN_EXPIRED:
                return "expired";
        case TOKEN_CONSUMED:
                return "consumed";
        }
        return "unknown";
}

void kernel_tokens_clear(SimTokens *t) {
        uint64_t minted = t->minted, redeemed = t->redeemed, refused = t->refused;

        *t = (SimTokens) { .minted = minted, .redeemed = redeemed, .refused = refused };
}

/* ---- commands -------------------------------------------------------------- */

uint32_t kernel_max_msg(const Sim *s) {
        return s->o.has_max_msg ? s->o.max_msg : KVMI_MAX_MSG_SIZE_V7;
}

static bool kernel_cmd_supported(const Sim *s, KvmiCmd cmd) {
        switch (cmd) {
        case KVMI_CMD_GET_VERSION:
        case KVMI_CMD_CHECK_COMMAND:
        case KVMI_CMD_CHECK_EVENT:
        case KVMI_CMD_GET_GUEST_INFO:
        case KVMI_CMD_CONTROL_VM_EVENTS:
        case KVMI_CMD_CONTROL_EVENTS:
                return true;
        case KVMI_CMD_GET_MAP_TOKEN:
                return !s->o.no_map_token;
        default:
                return false;
        }
}

static bool kernel_ev_supported(const Sim *s, KvmiEv ev) {
        return ev == KVMI_EV_UNHOOK || (ev == KVMI_EV_HYPERCALL && !s->o.no_hypercall);
}

static void kernel_reply(SimVm *vm, KvmiCmd cmd, const KvmiReply *r) {
        uint8_t buf[KVMI_MSG_HDR_SIZE + KVMI_ERROR_CODE_SIZE + KVMI_MAP_TOKEN_SIZE];
        int n = kvmi_reply_encode(buf, sizeof buf, &kvmi_numbering_v7, cmd, r);

        if (n < 0) {
                vm_error(vm, "cannot encode the %s reply: %s", kvmi_cmd_to_string(cmd), kvmi_strerror(n));
                return;
        }
        (void) vm_send(vm, buf, (size_t) n);
}

static void kernel_reply_error(SimVm *vm, uint16_t id, uint32_t seq, int32_t err) {
        uint8_t buf[KVMI_MSG_HDR_SIZE + KVMI_ERROR_CODE_SIZE];
        int n = kvmi_error_reply_encode(buf, sizeof buf, id, seq, err);

        if (n >= 0)
                (void) vm_send(vm, buf, (size_t) n);
}

static int32_t kernel_control(SimVm *vm, const KvmiCommand *c) {
        const Sim *s = vm->sim;
        const KvmiEvInfo *info = &kvmi_numbering_v7.ev[c->control.event];
        uint32_t bit = 1U << c->control.event;

        if (c->cmd == KVMI_CMD_CONTROL_VM_EVENTS) {
                if (!info->vm)
                        return -KVM_EINVAL;     /* a vCPU event: CONTROL_EVENTS' business */
                if (!kernel_ev_supported(s, c->control.event))
                        return -KVM_EOPNOTSUPP;
                vm->vm_events = c->control.enable ? vm->vm_events | bit : vm->vm_events & ~bit;
                return 0;
        }
        if (c->vcpu >= vm->nvcpus || info->vm)
                return -KVM_EINVAL;
        if (!kernel_ev_supported(s, c->control.event))
                return -KVM_EOPNOTSUPP;
        SimVcpu *v = &vm->vcpus[c->vcpu];
        v->events = c->control.enable ? v->events | bit : v->events & ~bit;
        return 0;
}

static void kernel_command(SimVm *vm, const KvmiCommand *c) {
        const Sim *s = vm->sim;
        KvmiReply r = { .seq = c->seq };
        KvmiCmd cmd;

        switch (c->cmd) {
        case KVMI_CMD_GET_VERSION:
                r.version.version = 7;
                /* libkvmi v7 (16 bytes): a padding word and zero features,
                 * unless --max-msg puts a limit in that word too. */
                r.version.has_features = s->o.version_layout == 16;
                if (s->o.has_max_msg || s->o.version_layout == 8)
                        r.version.max_msg_size = kernel_max_msg(s);
                break;

        case KVMI_CMD_CHECK_COMMAND:
                if (kvmi_numbering_cmd_from_id(&kvmi_numbering_v7, c->check.id, &cmd) < 0 ||
                    !kernel_cmd_supported(s, cmd))
                        r.err = -KVM_EOPNOTSUPP;
                break;

        case KVMI_CMD_CHECK_EVENT: {
                KvmiEv ev;
                if (kvmi_numbering_ev_from_id(&kvmi_numbering_v7, c->check.id, &ev) < 0 ||
                    !kernel_ev_supported(s, ev))
                        r.err = -KVM_EOPNOTSUPP;
                break;
        }

        case KVMI_CMD_GET_GUEST_INFO:
                if (mis_silent(vm, c->cmd, c->seq))
                        return;         /* --misbehave silent-command: kvmid waits in vain */
                r.guest_info.vcpu_count = vm->nvcpus;
                vm->got_guest_info = true;
                break;

        case KVMI_CMD_CONTROL_VM_EVENTS:
        case KVMI_CMD_CONTROL_EVENTS:
                r.err = kernel_control(vm, c);
                if (r.err < 0)
                        util_log(s, "%s: %s(%s) refused: %s", vm->spec.name, kvmi_cmd_to_string(c->cmd),
                                 kvmi_ev_to_string(c->control.event), kvmi_kvm_error_to_string(r.err));
                break;

        case KVMI_CMD_GET_MAP_TOKEN:
                if (s->o.no_map_token)
                        r.err = -KVM_EOPNOTSUPP;
                else
                        r.err = kernel_token_mint(&vm->tokens, util_now_ns(), &r.map_token);
                break;

        default:
                r.err = -KVM_EOPNOTSUPP;
                break;
        }
        kernel_reply(vm, c->cmd, &r);
}

void kernel_handle(SimVm *vm, const KvmiMsgHdr *h, const uint8_t *msg, size_t len) {
        KvmiCommand c;
        uint16_t reply_id = 0;
        KvmiCmd cmd;
        int r;

        (void) kvmi_numbering_cmd_to_id(&kvmi_numbering_v7, KVMI_CMD_EVENT_REPLY, &reply_id);
        if (h->id == reply_id) {
                job_on_reply(vm, h, msg, len);
                return;
        }
        if (vm->floor) {
                vm_error(vm, "floor peer sent message id %u", h->id);
                return;
        }

        r = kvmi_command_decode(&kvmi_numbering_v7, msg, len, &c);
        if (r == -ENOMSG || r == -EOPNOTSUPP) {
                /* Unknown id, or one this kernel does not implement. */
                if (kvmi_numbering_cmd_from_id(&kvmi_numbering_v7, h->id, &cmd) == 0)
                        vm->cmd_count[cmd]++;
                else
                        vm->cmd_unknown++;
                if (kvmi_numbering_cmd_from_id(&kvmi_numbering_v7, h->id, &cmd) == 0 && cmd == KVMI_CMD_EVENT)
                        vm_error(vm, "kvmid sent an EVENT message (seq %" PRIu32 ")", h->seq);
                util_log(vm->sim, "%s: command id %u (seq %" PRIu32 "): not supported", vm->spec.name, h->id,
                         h->seq);
                kernel_reply_error(vm, h->id, h->seq, -KVM_EOPNOTSUPP);
                vm_check_probed(vm);
                return;
        }
        if (r == -EPROTO || r == -EDOM) {
                /* The kernel refuses nonzero padding and bad values with -KVM_EINVAL. */
                if (kvmi_numbering_cmd_from_id(&kvmi_numbering_v7, h->id, &cmd) == 0)
                        vm->cmd_count[cmd]++;
                vm_error(vm, "kvmid sent a malformed command id %u (seq %" PRIu32 "): %s", h->id, h->seq,
                         kvmi_strerror(r));
                kernel_reply_error(vm, h->id, h->seq, -KVM_EINVAL);
                return;
        }
        if (r < 0) {
                /* Wrong size: the kernel cannot resynchronise and shuts the socket. */
                vm_error(vm, "kvmid sent command id %u (seq %" PRIu32 ") with a bad size %u: %s", h->id, h->seq,
                         h->size, kvmi_strerror(r));
                vm_close(vm, false, "malformed command from kvmid");
                return;
        }
        vm->cmd_count[c.cmd]++;
        util_log(vm->sim, "%s: %s (seq %" PRIu32 ")", vm->spec.name, kvmi_cmd_to_string(c.cmd), c.seq);
        kernel_command(vm, &c);
        if (vm->state == VM_KERNEL)
                vm_check_probed(vm);
}
