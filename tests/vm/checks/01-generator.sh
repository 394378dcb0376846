#!/usr/bin/env bash
# The generator ran at boot: systemd and cgroupfs carry the policy's values for each
# user (overrides included: pam_contain sets those at login), user.slice and the service
# tree, and its status says so.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
check_begin 01-generator

status=$(ssh_root 'cat /run/contain/generator.json' 2>/dev/null) || errs+=("no /run/contain/generator.json")
if [ -n "${status:-}" ] && ! grep -q '"outcome": *"applied"' <<<"$status"; then
    errs+=("generator outcome is not applied: $(tr -d '\n' <<<"$status" | cut -c1-200)")
fi

for user in alice bob; do
    uid=$(ssh_root "id -u $user")
    slice=/user.slice/user-$uid.slice
    # Read from inside the user's own login, so the slice is live.
    got=$(ssh_as "$user" "cd /sys/fs/cgroup$slice && cat memory.high memory.max memory.swap.max pids.max" | tr '\n' ' ')
    want="$(user_limit "$user" memory_high) $(user_limit "$user" memory_max) $(user_limit "$user" memory_swap_max) $(user_limit "$user" tasks_max) "
    [ "$got" = "$want" ] || errs+=("$user cgroupfs high/max/swap/pids = ${got}want ${want}")
    shown=$(ssh_root "systemctl show -P MemoryHigh user-$uid.slice; systemctl show -P MemoryMax user-$uid.slice; systemctl show -P MemorySwapMax user-$uid.slice; systemctl show -P TasksMax user-$uid.slice" | tr '\n' ' ')
    [ "$shown" = "$want" ] || errs+=("$user systemctl show = ${shown}want ${want}")
    ssh_root "systemctl show -P DropInPaths user-$uid.slice" | grep -q '30-contain.conf' ||
        errs+=("user-$uid.slice has no 30-contain.conf drop-in")
    read -r h m s p <<<"$got"
    figs+=("$user high $(mib "$h") max $(mib "$m") swap $s pids $p")
done

want=$(policy_get user_slice.memory_max max)
got=$(cg_read /user.slice memory.max)
[ "$got" = "$want" ] || errs+=("user.slice memory.max $got, want $want")
figs+=("user.slice max $(mib "$got")")

# The service tree: an instance's own cgroup carries the tree's caps.
ssh_root 'systemctl start t3-serve@vmcheck.service'
cg=$(ssh_root 'systemctl show -P ControlGroup t3-serve@vmcheck.service')
got=$(cg_read "$cg" memory.max 2>/dev/null || echo missing)
want=$(policy_get trees.t3-serve.memory_max)
[ "$got" = "$want" ] || errs+=("t3-serve@vmcheck memory.max $got, want $want ($cg)")
figs+=("t3-serve@ max $(mib "$got")")
ssh_root 'systemctl stop t3-serve@vmcheck.service'

finish "$name"
