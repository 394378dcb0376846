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
limit=$(sed -n 's/^pressure_limit = "\([0-9]*\)%"$/\1/p' "$VM_HERE/policy-stress-b.toml")
armed() { ssh_root 'oomctl' | grep -A1 'Path: /user.slice$' | grep -q "Limit: $limit.00%"; }
if ! wait_until 60 armed; then
    errs+=("oomd does not police /user.slice at $limit% after the reload")
fi
figs+=("oomd $(ssh_root 'oomctl' | sed -n 's/^Default Memory Pressure Duration: //p') duration")

# The quiet neighbour, and alice's runaway (it keeps rewriting 500M above a 200M
# throttle point with swap allowed: reclaim activity and pressure).
ssh_as bob 'nohup sleep 900 >/dev/null 2>&1 &'
t0=$(guest_now)
ssh_as alice 'timeout 170 stress-ng --vm 1 --vm-bytes 500M --vm-keep --timeout 160s --quiet' >/dev/null 2>&1 &
bloat=$!
# user.slice's memory pressure as oomd reads it ("full"), every 2 s: the margin over the limit.
ssh_root "rm -f /tmp/oomd-pressure.txt; nohup sh -c 'for i in \$(seq 90); do
    echo \$(date +%s) \$(sed -n \"s/^full avg10=\\([0-9.]*\\) .*/\\1/p\" /sys/fs/cgroup/user.slice/memory.pressure) \$(swapon --show=USED --noheadings --bytes | head -n1);
    sleep 2; done' >/tmp/oomd-pressure.txt 2>&1 & echo \$! >/tmp/oomd-pressure.pid"
running() { ssh_root 'pgrep -u alice -x stress-ng >/dev/null'; }
wait_until 30 running || errs+=("alice's stress-ng never ran (SIGILL on this emulated CPU?)")

killed() { ssh_root "journalctl -u systemd-oomd --since @${t0%.*} --no-pager -o cat | grep -q '^Killed /user.slice/user-$uid.slice'"; }
if wait_until 170 killed; then
    line=$(ssh_root "journalctl -u systemd-oomd --since @${t0%.*} --no-pager -o short-unix | grep -m1 'Killed /user.slice/user-$uid.slice'")
    tk=${line%% *}
    figs+=("killed after $(python3 -c "print(f'{$tk - $t0:.1f}')") s")
    figs+=("$(sed -n 's/.*\(Killed [^ ]*\).*/\1/p' <<<"$line")")
    figs+=("before it user.slice's full avg10 peaked at $(ssh_root "awk -v t=$tk '\$1 <= t && \$2 > m {m = \$2} END {print m + 0}' /tmp/oomd-pressure.txt")% (limit $limit%)")
else
    errs+=("oomd killed nothing of alice's within 170 s ($(ssh_root 'oomctl | grep -A3 "Path: /user.slice$" | tr -s "\t\n" "  "' || true); time, user.slice's full avg10, swap used: $(ssh_root 'tr "\n" ";" </tmp/oomd-pressure.txt' || true))")
fi
ssh_root 'kill "$(cat /tmp/oomd-pressure.pid)"' >/dev/null 2>&1 || true
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
