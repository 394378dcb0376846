#!/usr/bin/env bash
# Every ssh login of alice and bob is in its capped user-UID.slice from its first
# command; a tmux server started there stays there after logout.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
check_begin 02-login-slice

for user in alice bob; do
    uid=$(ssh_root "id -u $user")
    # The first command of the login: its own cgroup and that slice's cap.
    out=$(ssh_as "$user" 'cat /proc/self/cgroup; cat /sys/fs/cgroup/user.slice/user-$(id -u).slice/memory.max')
    cg=$(sed -n 's/^0:://p' <<<"$out" | head -n1)
    max=$(tail -n1 <<<"$out")
    case "$cg" in
    /user.slice/user-"$uid".slice/*) figs+=("$user ${cg#/user.slice/} cap $(mib "$max")") ;;
    *) errs+=("$user login in ${cg:-?}") ;;
    esac
    want=$(user_limit "$user" memory_max)
    [ "$max" = "$want" ] || errs+=("$user slice memory.max $max, want $want")
    # cpu_quota: cpu.max holds the quota per 100 ms period ("150%" -> 150000), else "max".
    quota=$(user_limit "$user" cpu_quota)
    case "$quota" in
    *%) want="$((${quota%\%} * 1000)) 100000" ;;
    *) want="max 100000" ;;
    esac
    got=$(ssh_root "cat /sys/fs/cgroup/user.slice/user-$uid.slice/cpu.max" || true)
    if [ "$got" = "$want" ]; then
        if [[ $quota == *% ]]; then figs+=("$user cpu.max $got (cpu_quota $quota)"); fi
    else
        errs+=("$user slice cpu.max '$got', want '$want' (cpu_quota ${quota:-unset})")
    fi
done

# tmux: the server forks away from the login; after logout it must still be capped.
uid=$(ssh_root 'id -u alice')
ssh_root 'pkill -u alice -x tmux || true; pkill -u alice -f "^tmux" || true' >/dev/null 2>&1 || true
ssh_as alice 'tmux new-session -d -s vmcheck "sleep 3600"'
pid=$(ssh_root 'pgrep -u alice -o -f "^tmux"' || true)
if [ -z "$pid" ]; then
    errs+=("no tmux server for alice")
else
    # Logged out: the ssh session has ended; wait until logind agrees.
    wait_until 60 ssh_root '[ "$(loginctl show-user alice -P State)" = closing ]' || true
    cg=$(ssh_root "sed -n 's/^0:://p' /proc/$pid/cgroup" || true)
    case "$cg" in
    /user.slice/user-"$uid".slice/*) figs+=("tmux after logout in ${cg#/user.slice/}") ;;
    *) errs+=("tmux server after logout in ${cg:-gone}") ;;
    esac
    ssh_root "kill $pid" >/dev/null 2>&1 || true
fi
finish "$name"
