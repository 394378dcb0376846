#!/usr/bin/env bash
# make demo: a login lands in its capped slice; a runaway is killed at its ceiling
# while a neighbour's shell stays responsive. A few readable lines, then PASS/FAIL.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
say() { printf '  %s\n' "$*"; }
errs=()
figs=()

uid=$(ssh_root 'id -u alice')
slice=/user.slice/user-$uid.slice
out=$(ssh_as alice 'sed -n s/^0:://p /proc/self/cgroup; cd /sys/fs/cgroup/user.slice/user-$(id -u).slice && cat memory.high memory.max memory.swap.max')
{ read -r cg; read -r high; read -r max; read -r swap; } <<<"$out"
say "alice logs in over ssh; her shell runs in $cg"
say "  her slice: throttled above $(mib "$high"), hard ceiling $(mib "$max"), swap $(mib "$swap")"
case "$cg" in "$slice"/*) ;; *) errs+=("alice's login is not in $slice") ;; esac
[ "$max" != max ] || errs+=("alice's slice is not capped")

install_tools
ssh_root 'rm -f /tmp/bob-probe.txt /tmp/bob-probe.stop'
ssh_as bob 'nohup /usr/local/bin/vm-probe.py 240 /tmp/bob-probe.txt /tmp/bob-probe.stop >/dev/null 2>&1 &'
say "bob, next door, runs a 10 ms heartbeat in his shell"

kills0=$(memevent "$slice" oom_kill)
swap0=$(pswpout)
t0=$(guest_now)
say "alice starts a runaway: +50 MiB every 50 ms, without end ..."
ssh_as alice "timeout 200 /usr/local/bin/vm-grow.py 50 50 4000" >/dev/null 2>&1 &
grower=$!
killed() { [ "$(memevent "$slice" oom_kill)" -gt "${kills0:-0}" ]; }
if wait_until 200 killed; then
    line=$(ssh_root "journalctl -k -o short-unix --since @${t0%.*} --no-pager | grep -m1 'oom-kill:.*CONSTRAINT_MEMCG'" || true)
    victim=$(ssh_root "journalctl -k --since @${t0%.*} --no-pager | grep -m1 -o 'Killed process [0-9]* ([^)]*)'" || true)
    secs=$(python3 -c "print(f'{${line%% *} - $t0:.1f}')" 2>/dev/null || echo '?')
    say "... ended after $secs s inside her slice by the kernel's memcg OOM: ${victim:-?}"
    say "    $(grep -o 'oom_memcg=[^,]*' <<<"$line")"
    figs+=("killed after $secs s")
else
    errs+=("the runaway was not killed within 200 s")
    say "... the runaway was NOT killed within 200 s"
fi
wait "$grower" 2>/dev/null || true

ssh_root 'touch /tmp/bob-probe.stop'
wait_until 30 ssh_root 'test -s /tmp/bob-probe.txt' || true
probe=$(ssh_root 'cat /tmp/bob-probe.txt' 2>/dev/null || echo '- - - ?')
read -r _ _ _ pmax <<<"$probe"
t=$SECONDS
ssh_as bob true && blogin=$((SECONDS - t)) || blogin=failed
dswap=$(($(pswpout) - swap0))
say "bob's shell stayed responsive: worst heartbeat delay $pmax ms, a new login took $blogin s"
say "swap written meanwhile: $dswap pages"
figs+=("bob worst delay $pmax ms" "pswpout +$dswap")
[ "$blogin" != failed ] || errs+=("bob could not log in")
finish demo
