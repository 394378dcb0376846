#!/usr/bin/env bash
# alice cannot raise her own caps or leave her slice by asking: systemd refuses her
# SetUnitProperties on her slice (busctl, systemctl set-property) and a system scope,
# cgroupfs refuses her writes to the slice's limits and to a cgroup.procs outside it;
# afterwards her slice's limits are what they were.
set -euo pipefail
# shellcheck disable=SC1091 # lib.sh: followed by shellcheck -x
. "$(dirname "$0")/../lib.sh"
check_begin 10-no-self-raise
alice_slice
gdir=/tmp/contain-raise
want="$(user_limit alice memory_high) $(user_limit alice memory_max) $(user_limit alice memory_swap_max) $(user_limit alice tasks_max)"

cleanup() {
    # terminate-user leaves the processes of logins already closed: pkill them.
    ssh_root "loginctl terminate-user alice; pkill -u alice; rm -rf $gdir" >/dev/null 2>&1 || true
    wait_until 60 ssh_root '! pgrep -u alice' || ssh_root 'pkill -KILL -u alice' >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Each attempt prints "NAME RC FIRST-LINE-OF-ITS-OUTPUT".
cat >"$VM_RUN_DIR/raise.sh" <<'SH'
#!/bin/sh
u=user-$1.slice d=/sys/fs/cgroup/user.slice/user-$1.slice
try() {
    what=$1
    shift
    out=$("$@" 2>&1)
    rc=$?
    printf '%s %s %s\n' "$what" "$rc" "$(printf '%s\n' "$out" | head -n1)"
}
try busctl-SetUnitProperties busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
    org.freedesktop.systemd1.Manager SetUnitProperties 'sba(sv)' "$u" true 1 MemoryMax t 99999999999
try set-property systemctl --no-ask-password set-property "$u" MemoryMax=infinity TasksMax=infinity
try set-property-runtime systemctl --no-ask-password set-property --runtime "$u" MemoryMax=infinity
try system-scope systemd-run --no-ask-password --scope -p Slice=system.slice true
try write-memory.max sh -c "echo max > $d/memory.max"
try write-pids.max sh -c "echo max > $d/pids.max"
try move-to-root sh -c 'echo $$ > /sys/fs/cgroup/cgroup.procs'
try move-to-system.slice sh -c 'echo $$ > /sys/fs/cgroup/system.slice/cgroup.procs'
SH
ssh_root "rm -rf $gdir && mkdir -m 755 $gdir"
copy_in "$VM_RUN_DIR/raise.sh" "$gdir/raise.sh"
ssh_root "chmod 755 $gdir/raise.sh"

limits() { ssh_root "cd /sys/fs/cgroup$slice && cat memory.high memory.max memory.swap.max pids.max" | tr '\n' ' ' | sed 's/ $//'; }
# An idle process keeps the slice alive between her logins.
ssh_as alice 'nohup sleep 7020 >/dev/null 2>&1 </dev/null &'
before=$(limits)
sd_before=$(ssh_root "systemctl show -P MemoryMax user-$uid.slice")
[ "$before" = "$want" ] || errs+=("before: alice's high/max/swap/pids $before, want $want")

out=$(ssh_as alice "$gdir/raise.sh $uid" || true)
n=0
refused=() # "NAMES: MESSAGE", grouped by message
while read -r what rc msg; do
    [ -n "$what" ] || continue
    n=$((n + 1))
    if [ "$rc" = 0 ]; then
        errs+=("alice's $what SUCCEEDED")
    elif grep -qiE 'access denied|interactive authentication required|permission denied|operation not permitted' <<<"$msg"; then
        why=${msg##*: } hit=
        for i in "${!refused[@]}"; do
            if [[ ${refused[i]} == *": $why" ]]; then
                refused[i]="${refused[i]%: *}, $what: $why"
                hit=1
            fi
        done
        [ -n "$hit" ] || refused+=("$what: $why")
    else
        errs+=("alice's $what failed, but not as refused: $msg")
    fi
done <<<"$out"
figs+=("${refused[@]/#/refused }")
((n == 8)) || errs+=("$n of 8 attempts reported: $(tr '\n' ' ' <<<"$out" | cut -c1-200)")

after=$(limits)
sd_after=$(ssh_root "systemctl show -P MemoryMax user-$uid.slice")
if [ "$after" = "$before" ] && [ "$sd_after" = "$sd_before" ]; then
    read -r _ m _ p <<<"$after"
    figs+=("after: memory.max $(mib "$m") pids.max $p unchanged")
else
    errs+=("alice's slice changed: high/max/swap/pids $before -> $after, systemd MemoryMax $sd_before -> $sd_after")
fi
cg=$(ssh_root "sed -n 's/^0:://p' /proc/\$(pgrep -u alice -o -xf 'sleep 7020')/cgroup" || true)
[[ $cg == "$slice"/* ]] || errs+=("alice's sleep now in ${cg:-?}")

trap - EXIT
cleanup
finish "$name"
