/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Authorization: the policy snapshot in force and decisions against it.
 * The snapshot is immutable; a reload builds a new one and swaps it in only
 * when every file parsed, so a broken edit never loosens or tightens
 * anything by accident. */

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "kvmid.h"

#define BUILTIN_POLICY "default deny\n"

int authz_load(const Config *c, bool allow_builtin, Policy **ret, bool *ret_builtin, char **ret_error) {
        struct stat st;
        int r;

        /* No rules file at start: nothing is allowed (drop-ins need the main
         * file's default line), which is safe, and the log says so; a
         * reload while there is still none keeps it so.  Once a file was
         * in force, its absence is an error like any other, so that a
         * file renamed mid-edit does not turn the policy into deny-all. */
        if (allow_builtin && stat(c->policy.file, &st) < 0 && errno == ENOENT) {
                r = policy_parse_string("(built-in)", BUILTIN_POLICY, ret, ret_error);
                if (r == 0)
                        *ret_builtin = true;
                return r;
        }
        r = policy_load(c->policy.file, c->policy.directory, ret, ret_error);
        if (r == 0)
                *ret_builtin = false;
        return r;
}

/* Every load is a decision about what is allowed from now on: audited. */
static void authz_audit(Server *s, const Policy *p, const char *error, bool initial, bool changed) {
        _cleanup_json_ struct json_object *data = json_object_new_object();

        if (data && p) {
                /* A failed reload keeps the policy in force: say which. */
                json_object_object_add(data, error ? "kept_digest" : "digest", json_object_new_string(policy_digest(p)));
                json_object_object_add(data, "rules", json_object_new_int64((int64_t) policy_n_rules(p)));
                json_object_object_add(data, "builtin", json_object_new_boolean(s->policy_builtin));
                json_object_object_add(data, "changed", json_object_new_boolean(changed));
        }
        if (data) {
                json_object_object_add(data, "initial", json_object_new_boolean(initial));
                json_object_object_add(data, "file", json_object_new_string(s->config->policy.file));
        }
        server_audit(s, &(AuditEvent) {
                .kind = error ? AUDIT_KIND_POLICY_RELOAD_FAIL : AUDIT_KIND_POLICY_RELOAD_OK,
                .reason = error,
                .data = data,
        });
}

static void authz_install(Server *s, Policy *p, bool builtin) {
        policy_unref(s->policy);
        s->policy = p;
        s->policy_builtin = builtin;
        s->policy_loaded_usec = now_usec(CLOCK_REALTIME);
        if (builtin)
                log_warning("no policy file \"%s\": everything is denied (see kvmid.policy(5))",
                            s->config->policy.file);
        else
                log_info("policy loaded: %zu rules, default %s, digest %.16s", policy_n_rules(p),
                         policy_verdict_to_string(policy_default_verdict(p)), policy_digest(p));
}

int authz_start(Server *s) {
        _cleanup_free_ char *error = NULL;
        bool builtin;
        Policy *p;
        int r;

        r = authz_load(s->config, true, &p, &builtin, &error);
        if (r < 0) {
                /* before daemon-stop, so that the audit log says why kvmid did not start */
                authz_audit(s, NULL, error ?: "out of memory", true, false);
                return log_error_errno(r, "policy: %s", error ?: "out of memory");
        }
        authz_install(s, p, builtin);
        authz_audit(s, p, NULL, true, true);
        return 0;
}

int authz_reload(Server *s, char **ret_error) {
        _cleanup_free_ char *error = NULL;
        bool builtin;
        Policy *p;
        int r;

        r = authz_load(s->config, s->policy_builtin, &p, &builtin, &error);
        if (r < 0) {
                log_warning("policy reload failed, keeping the policy in force: %s", error ?: "out of memory");
                authz_audit(s, s->policy, error ?: "out of memory", false, false);
                if (ret_error)
                        *ret_error = TAKE_PTR(error);
                return r;
        }
        if (s->policy && streq(policy_digest(p), policy_digest(s->policy)) && builtin == s->policy_builtin) {
                log_info("policy reloaded: unchanged (digest %.16s)", policy_digest(p));
                policy_unref(p);
                s->policy_loaded_usec = now_usec(CLOCK_REALTIME);
                authz_audit(s, s->policy, NULL, false, false);
                return 0;
        }
        authz_install(s, p, builtin);
        authz_audit(s, p, NULL, false, true);
        session_recheck(s);
        return 0;
}

int authz_check(Server *s, const char *introspector, const char *target_name, const uint8_t *target_uuid,
                const char *const *labels, size_t n_labels, PolicyPermission perm, PolicyDecision *ret) {
        PolicyRequest req = {
                .introspector = introspector,
                .target_name = target_name,
                .target_uuid = target_uuid,
                .target_labels = labels,
                .n_target_labels = n_labels,
                .perm = perm,
        };

        return policy_evaluate(s->policy, &req, ret);
}
