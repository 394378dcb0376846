#!/usr/bin/env bash
# A refused policy, then a reboot: the box boots, the built-in default caps apply (caps stay
# on), and the reason is in the journal, the generator's status, `containctl status` and
# `containctl check`. The policy is cut down to its header comments for the reboot; then it is
# emptied, then given a bad value, each through a daemon-reload (the generator's same path).
# The generator's fallback is the same code on both releases: one reboot proves it.
# vm-suites: bookworm
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
check_begin 08-broken-policy
builtin_policy="$VM_HERE/../../packaging/policy.toml"

restore() {
    copy_in "$VM_POLICY" /etc/contain/policy.toml &&
        ssh_root 'systemctl daemon-reload && systemctl restart systemd-oomd'
}
trap restore EXIT

total=$(ssh_root "awk '/^MemTotal/ {print \$2 * 1024}' /proc/meminfo")
default_max=$(VM_POLICY=$builtin_policy policy_get users.memory_max)
case "$default_max" in
*%) default_bytes=$((total * ${default_max%\%} / 100)) ;;
*) default_bytes=$default_max ;;
esac

# expect_fallback WHAT PATTERN: the generator refused the policy for PATTERN, alice's new login
# has the built-in default's memory.max, and status and check both say why.
expect_fallback() {
    local what=$1 pattern=$2 status got out
    status=$(ssh_root 'cat /run/contain/generator.json' || true)
    grep -q '"outcome": *"fallback"' <<<"$status" ||
        errs+=("$what: generator status is not fallback: $(tr -d '\n' <<<"$status" | cut -c1-160)")
    grep -q "policy.toml:[0-9]*:[0-9]*: $pattern" <<<"$status" ||
        errs+=("$what: generator status does not give the reason ($pattern)")
    got=$(ssh_as alice 'cat /sys/fs/cgroup/user.slice/user-$(id -u).slice/memory.max' || true)
    if [ "$got" = max ] || [ -z "$got" ] || ((got > default_bytes + 1048576 || got < default_bytes - 1048576)); then
        errs+=("$what: alice's memory.max is '$got', want ~$default_bytes ($default_max of RAM, the built-in default)")
    fi
    out=$(ssh_root 'containctl status 2>&1' || true)
    if ! grep -q "built-in default policy applies" <<<"$out" || ! grep -q "$pattern" <<<"$out"; then
        errs+=("$what: containctl status does not say why: $(grep -m1 containctl <<<"$out" | cut -c1-120)")
    fi
    out=$(ssh_root 'containctl check 2>&1' || true)
    grep -q "^error: /etc/contain/policy.toml:[0-9]*:[0-9]*: $pattern" <<<"$out" ||
        errs+=("$what: containctl check does not name the error: $(grep -m1 '^error' <<<"$out" | cut -c1-120)")
}

# 1. Cut down to the shipped policy's header comments, then a reboot.
awk '!/^#/ && NF {exit} {print}' "$builtin_policy" >"$VM_RUN_DIR/comments.toml"
if [ ! -s "$VM_RUN_DIR/comments.toml" ] || grep -q '^\[' "$VM_RUN_DIR/comments.toml"; then
    fail "$name" "could not cut the policy to its comments"
    exit 1
fi
copy_in "$VM_RUN_DIR/comments.toml" /etc/contain/policy.toml
t1=$SECONDS
if ! reboot_and_wait; then
    fail "$name" "no boot after the comment-only policy"
    exit 1
fi
figs+=("rebooted in $((SECONDS - t1)) s")
expect_fallback "comments only" "the policy is empty, so it caps no user"
jline=$(ssh_root "journalctl -b --no-pager -o cat | grep -m1 'policy.toml:1:1: the policy is empty'" || true)
[ -n "$jline" ] || errs+=("comments only: the error is not in the journal")
# check exits non-zero here (the policy is refused): read its output first, then look.
out=$(ssh_root 'containctl check 2>&1' || true)
grep -q 'caps = false' <<<"$out" ||
    errs+=("comments only: containctl check does not say how to turn caps off on purpose")
figs+=("fallback cap $(mib "$default_bytes") ($default_max of RAM)")

# 2. Emptied.
ssh_root ': >/etc/contain/policy.toml && systemctl daemon-reload'
expect_fallback "emptied" "the policy is empty, so it caps no user"

# 3. A bad value.
sed 's/^memory_max = "800M"/memory_max = "banana"/' "$VM_POLICY" >"$VM_RUN_DIR/broken.toml"
grep -q banana "$VM_RUN_DIR/broken.toml" || { fail "$name" "could not break the test policy"; exit 1; }
copy_in "$VM_RUN_DIR/broken.toml" /etc/contain/policy.toml
ssh_root 'systemctl daemon-reload'
expect_fallback "bad value" "\`memory_max\` in \[users\]"
jline=$(ssh_root "journalctl -b --no-pager -o cat | grep -m1 'policy.toml:[0-9]*:[0-9]*: .*memory_max'" || true)
[ -n "$jline" ] || errs+=("bad value: the error is not in the journal")
figs+=("journal: $(cut -c1-90 <<<"$jline")")

trap - EXIT
restore || errs+=("could not restore the test policy")
want=$(user_limit alice memory_max)
got=$(ssh_as alice 'cat /sys/fs/cgroup/user.slice/user-$(id -u).slice/memory.max')
[ "$got" = "$want" ] || errs+=("after restoring, alice's memory.max is $got, want $want")
finish "$name"
