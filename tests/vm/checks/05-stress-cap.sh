#!/usr/bin/env bash
# Stress test A (the seed's): a runaway of alice's grows past her cap; the kernel's
# memcg OOM kills it at her slice (CONSTRAINT_MEMCG), nothing is swapped out, and
# bob's shell and the box stay responsive.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
check_begin 05-stress-cap
alice_slice
cap=$(user_limit alice memory_max)
install_tools

# bob's neighbour probe runs through the whole test.
ssh_root 'rm -f /tmp/bob-probe.txt /tmp/bob-probe.stop'
ssh_as bob 'nohup /usr/local/bin/vm-probe.py 240 /tmp/bob-probe.txt /tmp/bob-probe.stop >/dev/null 2>&1 &'

# Keep alice's slice alive across the test with a second, idle login.
ssh_as alice 'nohup sleep 600 >/dev/null 2>&1 &'
kills0=$(memevent "$slice" oom_kill)
swap0=$(pswpout)
t0=$(guest_now)

# The runaway: 50 MiB every 50 ms, well past her cap; its own login session.
ssh_as alice "timeout 200 /usr/local/bin/vm-grow.py 50 50 $(((cap >> 20) * 2))" >/dev/null 2>&1 &
grower=$!

killed() { [ "$(memevent "$slice" oom_kill)" -gt "${kills0:-0}" ]; }
if wait_until 200 killed; then
    line=$(ssh_root "journalctl -k -o short-unix --since @${t0%.*} --no-pager | grep -m1 'oom-kill:.*CONSTRAINT_MEMCG'" || true)
    tk=${line%% *}
    if [ -z "$line" ]; then
        errs+=("oom_kill counted but no CONSTRAINT_MEMCG line in the kernel log")
    else
        secs=$(python3 -c "print(f'{$tk - $t0:.1f}')")
        figs+=("killed after ${secs} s")
        grep -q "oom_memcg=${slice}," <<<"$line" ||
            errs+=("OOM not at alice's slice: ${line#*oom-kill:}")
        victim=$(ssh_root "journalctl -k --since @${t0%.*} --no-pager | grep -m1 -o 'Killed process [0-9]* ([^)]*)'" || true)
        figs+=("${victim:-victim ?}")
    fi
else
    errs+=("no OOM kill in alice's slice within 200 s (memory.current $(mib "$(cg_read "$slice" memory.current 2>/dev/null || echo ?)"), events: $(ssh_root "tr '\n' ' ' </sys/fs/cgroup$slice/memory.events" 2>/dev/null || echo ?))")
fi
events=$(ssh_root "grep -E '^(high|max|oom_kill) ' /sys/fs/cgroup$slice/memory.events | tr '\n' ' '" || true)
figs+=("memory.events ${events% }")

swap1=$(pswpout)
dswap=$((swap1 - swap0))
figs+=("pswpout +$dswap")
# A few pages may move for unrelated reasons; a thrash is hundreds of thousands.
((dswap <= 256)) || errs+=("swapped out $dswap pages during the runaway")

# bob: a fresh login and his probe.
t1=$SECONDS
if ssh_as bob true; then figs+=("bob login $((SECONDS - t1)) s"); else errs+=("bob cannot log in"); fi
# shellcheck disable=SC2119 # no idle run to compare with here
bob_probe_end
state=$(ssh_root 'systemctl is-system-running' || true)
case "$state" in running | degraded) ;; *) errs+=("system state $state") ;; esac

ssh_root 'pkill -u alice -f vm-grow.py; pkill -u alice -x sleep' >/dev/null 2>&1 || true
wait "$grower" 2>/dev/null || true
finish "$name"
