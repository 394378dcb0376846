#!/usr/bin/env bash
# Stress test B: under a test policy with a low pressure limit (policy-stress-b.toml,
# dropped into /etc/contain/policy.d/), systemd-oomd kills the offending cgroup in
# alice's slice; bob's session lives. Reports how long the kill took.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
check_begin 06-stress-oomd
uid=$(ssh_root 'id -u alice')
buid=$(ssh_root 'id -u bob')

apply_policy() { # reload the generator's output and have oomd re-read its drop-in
    ssh_root 'systemctl daemon-reload && systemctl restart systemd-oomd'
}
restore() {
    ssh_root 'rm -f /etc/contain/policy.d/90-vm-stress-b.toml; pkill -u alice stress-ng; pkill -u bob -x sleep' >/dev/null 2>&1 || true
    apply_policy || true
    ssh_root 'systemctl start contain-watchdog.service' >/dev/null 2>&1 || true
}
trap restore EXIT

copy_in "$VM_HERE/policy-stress-b.toml" /etc/contain/policy.d/90-vm-stress-b.toml
ssh_root 'systemctl stop contain-watchdog.service' >/dev/null 2>&1 || true
apply_policy
armed() { ssh_root 'oomctl' | grep -A1 'Path: /user.slice$' | grep -q 'Limit: 20.00%'; }
if ! wait_until 60 armed; then
    errs+=("oomd does not police /user.slice at 20% after the reload")
fi
figs+=("oomd $(ssh_root 'oomctl' | sed -n 's/^Default Memory Pressure Duration: //p') duration")

# The quiet neighbour, and alice's runaway (it keeps rewriting 500M above a 200M
# throttle point with swap allowed: reclaim activity and pressure).
ssh_as bob 'nohup sleep 900 >/dev/null 2>&1 &'
t0=$(guest_now)
ssh_as alice 'timeout 170 stress-ng --vm 1 --vm-bytes 500M --vm-keep --timeout 160s --quiet' >/dev/null 2>&1 &
bloat=$!
running() { ssh_root 'pgrep -u alice -x stress-ng >/dev/null'; }
wait_until 30 running || errs+=("alice's stress-ng never ran (SIGILL on this emulated CPU?)")

killed() { ssh_root "journalctl -u systemd-oomd --since @${t0%.*} --no-pager -o cat | grep -q '^Killed /user.slice/user-$uid.slice'"; }
if wait_until 170 killed; then
    line=$(ssh_root "journalctl -u systemd-oomd --since @${t0%.*} --no-pager -o short-unix | grep -m1 'Killed /user.slice/user-$uid.slice'")
    tk=${line%% *}
    figs+=("killed after $(python3 -c "print(f'{$tk - $t0:.1f}')") s")
    figs+=("$(sed -n 's/.*\(Killed [^ ]*\).*/\1/p' <<<"$line")")
else
    errs+=("oomd killed nothing of alice's within 170 s ($(ssh_root 'oomctl | grep -A3 "Path: /user.slice$" | tr -s "\t\n" "  "' || true); swap: $(ssh_root 'swapon --show=NAME,USED --noheadings | tr -s " \n" " "' || true))")
fi
ssh_root "pgrep -u bob -x sleep >/dev/null && test -d /sys/fs/cgroup/user.slice/user-$buid.slice" ||
    errs+=("bob's session was hit too")
wait "$bloat" 2>/dev/null || true

trap - EXIT
restore
# Back to the main policy: alice's throttle point is the test policy's again.
want=$(user_limit alice memory_high)
ssh_as alice 'cat /sys/fs/cgroup/user.slice/user-$(id -u).slice/memory.high' | grep -qx "$want" ||
    errs+=("after restoring the policy alice's memory.high is not $want")
finish "$name"
