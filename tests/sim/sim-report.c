/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kvmi-sim's JSON report (also the control socket's per-VM status) and the
 * one-shot verdict: did everything go as expected?  With --introspector the
 * report has an "introspector" object (intro_json(), sim-introspector.c):
 *
 *   {"name","vm","state":"ready"|"failed"|...,"authenticated",
 *    "sessions":[{"target","uuid","session","state","tokens_minted","maps_allowed",
 *                 "maps_denied","unmaps","revoked"}],
 *    "subscribers":[{"index","delivered","missed","ordered","order_errors","gaps",
 *                    "targets":[{"target","state","delivered","missed","last_seq",...}]}],
 *    "tokens_minted","token_errors","maps_allowed","maps_denied","maps_denied_expected",
 *    "unmaps","unmaps_denied","kernel_redeemed","kernel_redeem_failed","mappings":[...],
 *    "mem_map_latency_ns":{"p50","p99","max"},"watch","revocations","errors","first_error"} */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sim.h"

struct json_object *report_vm_json(const SimVm *vm, bool status) {
        struct json_object *o = json_object_new_object(), *cmds = json_object_new_object();
        LatSummary sum = util_latvec_summary(&vm->lat);
        SimTokens tokens = vm->tokens;

        json_object_object_add(o, "name", json_object_new_string(vm->spec.name));
        json_object_object_add(o, "uuid", json_object_new_string(vm->spec.uuid_str));
        json_object_object_add(o, "handshake", json_object_new_string(vm->handshake[0] ? vm->handshake : "pending"));
        if (vm->got_cookie_hash) {
                char hex[2 * KVMI_COOKIE_HASH_SIZE + 1];
                util_hex(vm->cookie_hash, sizeof vm->cookie_hash, hex);
                json_object_object_add(o, "cookie_hash", json_object_new_string(hex));
        } else
                json_object_object_add(o, "cookie_hash", NULL);
        for (int i = 0; i < KVMI_CMD__MAX; i++)
                if (vm->cmd_count[i])
                        json_object_object_add(cmds, kvmi_cmd_to_string((KvmiCmd) i),
                                               json_object_new_int64(vm->cmd_count[i]));
        if (vm->cmd_unknown)
                json_object_object_add(cmds, "unknown", json_object_new_int64(vm->cmd_unknown));
        json_object_object_add(o, "commands", cmds);
        json_object_object_add(o, "vcpus", json_object_new_int(vm->nvcpus));
        json_object_object_add(o, "hypercall_vcpus", json_object_new_int((int) vm_hypercall_vcpus(vm)));
        json_object_object_add(o, "events_sent", util_json_u64(vm->events_sent));
        json_object_object_add(o, "acked", util_json_u64(vm->acked));
        json_object_object_add(o, "errors", util_json_u64(vm->errors));
        if (vm->first_error[0])
                json_object_object_add(o, "first_error", json_object_new_string(vm->first_error));
        json_object_object_add(o, "latency_ns", util_latency_json(&sum));
        json_object_object_add(o, "events_per_sec",
                               json_object_new_double(util_rate(vm->acked, vm->first_send_ns, vm->last_ack_ns)));
        json_object_object_add(o, "unhook_closed",
                               vm->unhook_closed < 0 ? NULL : json_object_new_boolean(vm->unhook_closed));
        if (vm->state == VM_CLOSED) {
                json_object_object_add(o, "closed_by_kvmid", json_object_new_boolean(vm->closed_by_peer));
                json_object_object_add(o, "close_reason", json_object_new_string(vm->close_reason));
        }
        if (vm->mis)
                json_object_object_add(o, "misbehave", mis_json(vm));
        if (status) {
                struct json_object *en = json_object_new_array(), *vmev = json_object_new_array();
                kernel_tokens_sweep(&tokens, util_now_ns());
                json_object_object_add(o, "state", json_object_new_string(vm_state_to_string(vm->state)));
                json_object_object_add(o, "probed", json_object_new_boolean(vm->probed));
                for (unsigned i = 0; i < vm->nvcpus; i++)
                        if (vm->vcpus[i].events & (1U << KVMI_EV_HYPERCALL))
                                json_object_array_add(en, json_object_new_int((int) i));
                json_object_object_add(o, "enabled_vcpus", en);
                for (int i = 0; i < KVMI_EV__MAX; i++)
                        if (vm->vm_events & (1U << i))
                                json_object_array_add(vmev, json_object_new_string(kvmi_ev_to_string((KvmiEv) i)));
                json_object_object_add(o, "vm_events", vmev);
                json_object_object_add(o, "tokens_live", json_object_new_int((int) tokens.n_live));
                json_object_object_add(o, "tokens_minted", util_json_u64(tokens.minted));
                json_object_object_add(o, "tokens_redeemed", util_json_u64(tokens.redeemed));
        }
        return o;
}

struct json_object *report_json(Sim *s) {
        struct json_object *o = json_object_new_object(), *vms = json_object_new_array(), *tot;
        uint64_t sent = 0, acked = 0, errors = 0, first = 0, last = 0;
        LatVec all = {};
        LatSummary sum;

        for (SimVm *vm = s->vms; vm; vm = vm->next) {
                if (vm->hidden)
                        continue;
                json_object_array_add(vms, report_vm_json(vm, false));
                sent += vm->events_sent;
                acked += vm->acked;
                errors += vm->errors;
                if (vm->first_send_ns && (!first || vm->first_send_ns < first))
                        first = vm->first_send_ns;
                last = MAX(last, vm->last_ack_ns);
                for (size_t i = 0; i < vm->lat.n; i++)
                        (void) util_latvec_add(&all, vm->lat.v[i]);
        }
        sum = util_latvec_summary(&all);
        util_latvec_free(&all);
        tot = json_object_new_object();
        json_object_object_add(tot, "events_sent", util_json_u64(sent));
        json_object_object_add(tot, "acked", util_json_u64(acked));
        json_object_object_add(tot, "errors", util_json_u64(errors));
        json_object_object_add(tot, "latency_ns", util_latency_json(&sum));
        json_object_object_add(tot, "events_per_sec", json_object_new_double(util_rate(acked, first, last)));
        json_object_object_add(tot, "elapsed_sec",
                               json_object_new_double(last > first ? (double) (last - first) / 1e9 : 0.0));
        json_object_object_add(tot, "run_sec", json_object_new_double((double) (util_now_ns() - s->start_ns) / 1e9));
        json_object_object_add(o, "vms", vms);
        json_object_object_add(o, "total", tot);
        json_object_object_add(o, "floor", json_object_new_boolean(s->o.floor));
        if (s->intro)
                json_object_object_add(o, "introspector", intro_json(s));
        return o;
}

/* Exit status of a one-shot run: everything as expected? */
bool report_verdict(Sim *s) {
        char why[SIM_ERR_LEN];

        for (SimVm *vm = s->vms; vm; vm = vm->next) {
                const char *n = vm->spec.name;
                uint64_t want = s->o.no_hypercall ? 0 : s->o.events * vm->nvcpus;
                if (vm->hidden)
                        continue;
                if (vm->mis) {
                        if (!mis_ok(vm, why, sizeof why))
                                sim_fail(s, "%s: %s", n, why);
                        continue;
                }
                if (!streq(vm->handshake, "ok"))
                        sim_fail(s, "%s: handshake: %s", n, vm->handshake[0] ? vm->handshake : "pending");
                else if (vm->errors)
                        sim_fail(s, "%s: %" PRIu64 " errors, first: %s", n, vm->errors, vm->first_error);
                else if (vm->events_sent != want || vm->acked != want)
                        sim_fail(s, "%s: %" PRIu64 " events sent, %" PRIu64 " acked, %" PRIu64 " expected", n,
                                 vm->events_sent, vm->acked, want);
                else if (vm->closed_by_peer && !vm->unhook_sent)
                        sim_fail(s, "%s: %s", n, vm->close_reason);
                else if (s->o.unhook_at_exit && vm->unhook_closed != 1)
                        sim_fail(s, "%s: kvmid did not close the channel within %d ms of UNHOOK", n,
                                 SIM_UNHOOK_WAIT_MS);
        }
        (void) intro_verdict(s);
        return !s->fail[0];
}
