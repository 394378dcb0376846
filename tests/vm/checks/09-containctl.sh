#!/usr/bin/env bash
# containctl on the installed box: `check` is clean, `status` shows alice's and bob's slices
# with the policy's caps, `selftest` passes, `apply` changes a running user's cap without a
# reboot, and `metrics` parses with Prometheus's own text-format parser.
# (Numbered to run before 10-remove, which uninstalls the package.)
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
check_begin 09-containctl

# Both users logged in: an idle process keeps each slice alive.
ssh_as alice 'nohup sleep 900 >/dev/null 2>&1 &'
ssh_as bob 'nohup sleep 900 >/dev/null 2>&1 &'
uid_a=$(ssh_root 'id -u alice')
uid_b=$(ssh_root 'id -u bob')
want_a=$(user_limit alice memory_max)
want_b=$(user_limit bob memory_max)

# 1. check: clean on the installed box, but for what it must say of this VM's disk: a virtio
# disk with no IO scheduler and io.cost off, where io_weight does nothing (contain.toml(5)).
out=$(ssh_root 'containctl check' 2>&1) && rc=0 || rc=$?
problems=$(grep -E '^(error|warning):' <<<"$out" | grep -v 'io_weight does nothing here' || true)
if [ -n "$problems" ] || ((rc > 1)); then
    errs+=("check (exit $rc): $(head -n3 <<<"${problems:-$out}" | tr '\n' ' ')")
elif ((rc == 1)); then
    figs+=("check clean but for the virtio disk's IO warning")
else
    figs+=("check clean")
fi

# 2. status: both slices, the policy's caps, matching.
st=$(ssh_root 'containctl status --json' || true)
verdict=$(python3 - "$st" "$uid_a" "$want_a" "$uid_b" "$want_b" <<'PY'
import json, sys
st = json.loads(sys.argv[1] or "{}")
bad = []
for uid, want in ((sys.argv[2], sys.argv[3]), (sys.argv[4], sys.argv[5])):
    row = next((s for s in st.get("slices", []) if s["unit"] == f"user-{uid}.slice"), None)
    if row is None:
        bad.append(f"user-{uid}.slice not listed")
    elif str(row.get("memory_max")) != want or row.get("caps_match") is not True:
        bad.append(f"user-{uid}.slice memory_max {row.get('memory_max')} (want {want}), caps_match {row.get('caps_match')}")
print("; ".join(bad) if bad else "ok")
PY
)
if [ "$verdict" = ok ]; then
    figs+=("status: alice $(mib "$want_a"), bob $(mib "$want_b"), caps match")
else
    errs+=("status: $verdict")
fi

# 3. selftest: memcg OOM at a cap, oomd under pressure, in a throwaway slice.
t=$SECONDS
st_json=$(ssh_root 'containctl selftest --json' 2>&1 || true)
summary=$(python3 - "$st_json" <<'PY'
import json, sys
try:
    res = json.loads(sys.argv[1])
except ValueError:
    print("FAIL unparsable: " + sys.argv[1][-200:].replace("\n", " "))
    sys.exit()
parts = []
for r in res:
    f = dict(r["figures"])
    word = "PASS" if r["passed"] else "FAIL"
    react = f" (oomd {f['seconds_above_limit_to_kill']} s after pressure > limit)" if "seconds_above_limit_to_kill" in f else ""
    parts.append(f"{word} {r['test']} {f.get('seconds_to_kill', '?')} s{react}" + ("" if r["passed"] else ": " + r["summary"]))
ok = bool(res) and all(r["passed"] for r in res)
print(("ok " if ok else "FAIL ") + ", ".join(parts))
PY
)
if [[ $summary == ok* ]]; then
    figs+=("selftest ${summary#ok } ($((SECONDS - t)) s)")
else
    errs+=("selftest: ${summary#FAIL }")
fi
left=$(ssh_root "systemctl list-units --all --no-legend 'contain-selftest*' 'contain_selftest*' | grep -v 'not-found'" || true)
[ -z "$left" ] || errs+=("selftest left units behind: $left")

# 4. apply: lower alice's cap in the policy, apply, see it on her running slice, no reboot.
boot0=$(boot_id)
ssh_root 'cp -p /etc/contain/policy.toml /root/policy.toml.before'
restore() {
    ssh_root 'cp -p /root/policy.toml.before /etc/contain/policy.toml && containctl apply >/dev/null' || true
}
trap restore EXIT
new=$((want_a - 50 * 1048576))
ssh_root "sed -i '/^user = \"alice\"/{n;s/^memory_max = .*/memory_max = \"$((new >> 20))M\"/}' /etc/contain/policy.toml"
t=$SECONDS
if out=$(ssh_root 'containctl apply' 2>&1); then
    got=$(cg_read "/user.slice/user-$uid_a.slice" memory.max)
    sd=$(ssh_root "systemctl show -P MemoryMax user-$uid_a.slice")
    if [ "$got" = "$new" ] && [ "$sd" = "$new" ] && [ "$(boot_id)" = "$boot0" ]; then
        figs+=("apply: alice $(mib "$want_a") → $(mib "$new") live in $((SECONDS - t)) s, no reboot")
    else
        errs+=("apply: alice's memory.max $got, systemd $sd, want $new")
    fi
    grep -q "MemoryMax" <<<"$out" || errs+=("apply did not report the change: $(tr '\n' ' ' <<<"$out")")
else
    errs+=("apply failed: $(tail -n3 <<<"$out" | tr '\n' ' ')")
fi
trap - EXIT
restore
got=$(cg_read "/user.slice/user-$uid_a.slice" memory.max)
[ "$got" = "$want_a" ] || errs+=("after restoring the policy, alice's memory.max is $got, want $want_a")

# 5. metrics: Prometheus's own parser on the host (python3-prometheus-client).
ssh_root 'containctl metrics' >"$VM_RUN_DIR/contain.prom" || errs+=("metrics failed")
parsed=$(/usr/bin/python3 - "$VM_RUN_DIR/contain.prom" "$uid_a" "$want_a" <<'PY' 2>&1
import sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
families = list(text_string_to_metric_families(text))
samples = [s for f in families for s in f.samples]
want = [s for s in samples if s.name == "contain_memory_max_bytes"
        and s.labels.get("unit") == f"user-{sys.argv[2]}.slice"]
if not want or want[0].value != float(sys.argv[3]):
    print(f"no contain_memory_max_bytes for user-{sys.argv[2]}.slice = {sys.argv[3]}")
else:
    print(f"ok {len(families)} families, {len(samples)} samples")
PY
) || true
if [[ $parsed == ok* ]]; then
    figs+=("metrics: ${parsed#ok }")
else
    errs+=("metrics: $(tail -n1 <<<"$parsed")")
fi

ssh_root 'pkill -u alice -x sleep; pkill -u bob -x sleep' >/dev/null 2>&1 || true
finish "$name"
