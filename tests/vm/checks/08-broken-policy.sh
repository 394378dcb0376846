#!/usr/bin/env bash
# A broken policy, then a reboot: the box boots, the built-in default caps apply
# (caps stay on), and the error is in the journal and in the generator's status.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
name=08-broken-policy
errs=()
figs=()
builtin_policy="$VM_HERE/../../packaging/policy.toml"

restore() {
    copy_in "$VM_POLICY" /etc/contain/policy.toml &&
        ssh_root 'systemctl daemon-reload && systemctl restart systemd-oomd'
}
trap restore EXIT

sed 's/^memory_max = "800M"/memory_max = "banana"/' "$VM_POLICY" >"$VM_RUN_DIR/broken.toml"
grep -q banana "$VM_RUN_DIR/broken.toml" || { fail "$name" "could not break the test policy"; exit 1; }
copy_in "$VM_RUN_DIR/broken.toml" /etc/contain/policy.toml
t1=$SECONDS
if ! reboot_and_wait; then
    fail "$name" "no boot after the broken policy"
    exit 1
fi
figs+=("rebooted in $((SECONDS - t1)) s")

status=$(ssh_root 'cat /run/contain/generator.json' || true)
grep -q '"outcome": *"fallback"' <<<"$status" || errs+=("generator status is not fallback: $(tr -d '\n' <<<"$status" | cut -c1-160)")
# The error names the file, line and key.
grep -q 'policy.toml:[0-9]*:[0-9]*: .*memory_max' <<<"$status" || errs+=("generator status does not name the error")
jline=$(ssh_root "journalctl -b --no-pager -o cat | grep -m1 'policy.toml:[0-9]*:[0-9]*: .*memory_max'" || true)
[ -n "$jline" ] || errs+=("the error is not in the journal")
figs+=("journal: $(cut -c1-90 <<<"$jline")")

# The built-in default caps, as a share of RAM.
want=$(VM_POLICY=$builtin_policy policy_get users.memory_max)
got=$(ssh_as alice 'cat /sys/fs/cgroup/user.slice/user-$(id -u).slice/memory.max')
total=$(ssh_root "awk '/^MemTotal/ {print \$2 * 1024}' /proc/meminfo")
case "$want" in
*%) exp=$((total * ${want%\%} / 100)) ;;
*) exp=$want ;;
esac
if [ "$got" = max ] || ((got > exp + 1048576 || got < exp - 1048576)); then
    errs+=("alice's memory.max under the fallback is $got, want ~$exp ($want of RAM)")
else
    figs+=("fallback cap $(mib "$got") ($want of RAM)")
fi

trap - EXIT
restore || errs+=("could not restore the test policy")
want=$(user_limit alice memory_max)
got=$(ssh_as alice 'cat /sys/fs/cgroup/user.slice/user-$(id -u).slice/memory.max')
[ "$got" = "$want" ] || errs+=("after restoring, alice's memory.max is $got, want $want")
finish "$name"
