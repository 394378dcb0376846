#!/usr/bin/env bash
# Three users balloon at once, each below their own memory_max but together over the
# guest's RAM: user.slice's aggregate cap holds (the kernel ends balloons inside
# user.slice, nothing outside it), none of the three users' memory goes to swap, and root
# still logs in over ssh throughout; root's login times during the storm are the figure.
# vm-suites: trixie
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
check_begin 75-three-balloons
users=(admin alice bob)
each=650 # MiB: above memory_high, below every user's memory_max; 3 x 650M > the 2G guest
agg=$(policy_get user_slice.memory_max)

install_tools || errs+=("cannot install the tools")
cleanup() { ssh_root "pkill -f vm-grow.py" >/dev/null 2>&1 || true; }
trap cleanup EXIT

oom0=$(memevent /user.slice oom_kill)
swp0=$(pswpout)
sys_oom0=$(ssh_root "awk '/^oom_kill / {print \$2}' /proc/vmstat")
for u in "${users[@]}"; do
    ssh_as "$u" "timeout 150 /usr/local/bin/vm-grow.py 25 100 $each" >/dev/null 2>&1 &
done
grown() { # the balloons are running and user.slice is near its cap, or something was ended
    [ "$(memevent /user.slice oom_kill)" -gt "$oom0" ] ||
        [ "$(cg_read /user.slice memory.current)" -gt $((agg * 8 / 10)) ]
}
wait_until 120 grown || errs+=("the balloons never pushed user.slice near its cap ($(mib "$(cg_read /user.slice memory.current)"))")

# Root's fresh logins while the balloons push against the cap.
users_swap() { # the three users' swap in use now, bytes (a slice already gone counts 0)
    ssh_root 'cat /sys/fs/cgroup/user.slice/user-100[012].slice/memory.swap.current 2>/dev/null; true' |
        awk '{s += $1} END {print s + 0}'
}
times=() peak=0 swap_seen=0
for _ in 1 2 3 4 5 6; do
    t0=$(date +%s%N)
    if ssh_within 120 root true; then
        times+=($((($(date +%s%N) - t0) / 1000000)))
    else
        errs+=("a root ssh login failed or took over 120 s during the storm")
        break
    fi
    cur=$(cg_read /user.slice memory.current)
    ((cur > peak)) && peak=$cur
    s=$(users_swap)
    ((s > swap_seen)) && swap_seen=$s
done

oom=$(($(memevent /user.slice oom_kill) - oom0))
sys_oom=$(($(ssh_root "awk '/^oom_kill / {print \$2}' /proc/vmstat") - sys_oom0))
((oom >= 1)) || errs+=("no OOM kill inside user.slice: 3 x ${each}M must not fit under $(mib "$agg")")
((sys_oom == oom)) || errs+=("$sys_oom OOM kills on the box, $oom of them in user.slice: something outside was hit")
# Root's own slice is exempt and may swap when user.slice reclaims: the users' may not.
swp=$(($(pswpout) - swp0))
((swap_seen == 0)) || errs+=("the users had $(mib "$swap_seen") in swap: their memory_swap_max is 0")
ssh_root 'systemctl is-active -q ssh || systemctl is-active -q sshd' || errs+=("sshd is not active")

if ((${#times[@]})); then
    figs+=("$(python3 - "${times[*]}" <<'PY'
import statistics, sys
t = sorted(int(x) for x in sys.argv[1].split())
print(f"root ssh logins during the storm: {len(t)}, median {statistics.median(t) / 1000:.1f} s, max {t[-1] / 1000:.1f} s")
PY
)")
fi
figs+=("user.slice cap $(mib "$agg"), highest memory.current seen $(mib "$peak"), $oom OOM kills in user.slice, none elsewhere, users' swap 0, box-wide pswpout +$swp pages")
trap - EXIT
cleanup
finish "$name"
