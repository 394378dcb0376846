#!/usr/bin/env bash
# Containment, side by side (a benchmark, not part of make test). One VM of SUITE, 1 GiB of
# swap on throughout: alice's runaway grows to 3x her policy memory_max while bob's 10 ms
# latency probe runs and root logs in afresh from the host; first with contain NOT
# installed, then with the .deb installed the way run.sh does it. Prints each phase's
# figures and one table. It reports, it does not judge timings: non-zero only if something
# broke (no VM, the install failed, a phase without figures).
#   tests/vm/bench/containment.sh [SUITE]     (bookworm by default)
# BENCH_WINDOW (default 150) bounds each runaway in seconds; BENCH_RUNAWAY=touch (default)
# keeps re-reading all it holds (a working set), =hold grows once and sleeps; CONTAIN_DEB
# as for run.sh.
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

suite=${1:-bookworm}
window=${BENCH_WINDOW:-150}
case ${BENCH_RUNAWAY:-touch} in
touch) grow_mode=--touch ;;
hold) grow_mode= ;;
*) echo "containment.sh: BENCH_RUNAWAY is touch or hold" >&2 && exit 2 ;;
esac
deb=$(find_deb)
if [ -z "$deb" ]; then
    echo "containment.sh: no target/debian/contain_*.deb (run make deb first)" >&2
    exit 1
fi
bench_results contain-bench

# hard_reset: the guest stopped answering for good: kill QEMU, boot a fresh overlay.
hard_reset() {
    kill "$VM_QEMU_PID" 2>/dev/null || true
    wait "$VM_QEMU_PID" 2>/dev/null || true
    VM_QEMU_PID=
    rm -rf "$VM_RUN_DIR"
    bench_boot "$suite"
}

# swap_on: the image's 1 GiB /swapfile (made by contain-test-swap.service at boot), swapped
# on again if it is off; prints the guest's swap total in MiB.
swap_on() {
    ssh_root 'swapon --show=NAME --noheadings | grep -qx /swapfile || /usr/local/sbin/contain-test-swap
        awk "/^SwapTotal/ {print int(\$2 / 1024)}" /proc/meminfo'
}

# root_logins FILE STOPFILE: a fresh root ssh login every 3 s, timed from the host, until
# STOPFILE exists (at least 3); one line per login, seconds or "fail" (120 s at most).
root_logins() {
    local n=0 s
    while ((n < 3)) || [ ! -e "$2" ]; do
        s=$(date +%s%N)
        if ssh_within 120 root true; then
            echo "$((($(date +%s%N) - s) / 1000000))" >>"$1"
        else
            echo fail >>"$1"
        fi
        n=$((n + 1))
        sleep 3
    done
}

# phase NAME: the runaway, bob's probe and root's logins; figures to $out/NAME.
phase() {
    local p=$1 pid t0 watch='' logins stop
    local uid slice
    uid=$(ssh_root 'id -u alice')
    slice=/user.slice/user-$uid.slice
    rec "$p" swap_mib "$(swap_on)"
    install_tools
    copy_in "$VM_HERE/bench/vm-runaway-watch.py" /usr/local/bin/vm-runaway-watch.py
    ssh_root 'chmod 755 /usr/local/bin/vm-runaway-watch.py; rm -f /tmp/bob-* /tmp/bench-watch.txt'

    say "$p: bob's probe, 15 s idle"
    ssh_within 120 bob '/usr/local/bin/vm-probe.py 15 /tmp/bob-idle.txt /tmp/bob-idle.stop' || true
    rec "$p" idle "$(ssh_root 'cat /tmp/bob-idle.txt' || true)"
    ssh_within 120 bob "nohup /usr/local/bin/vm-probe.py $((window + 900)) /tmp/bob-probe.txt /tmp/bob-probe.stop >/dev/null 2>&1 &"

    say "$p: alice's runaway to ${target} MiB (+50 MiB every 50 ms${grow_mode:+, then re-read in a loop}), for at most ${window} s"
    t0=$(guest_now)
    pid=$(ssh_within 120 alice "nohup /usr/local/bin/vm-grow.py 50 50 $target $grow_mode >/dev/null 2>&1 & echo \$!")
    ssh_root "nohup /usr/local/bin/vm-runaway-watch.py $pid $slice $window $target /tmp/bench-watch.txt >/dev/null 2>&1 &"
    logins=$out/$p.logins
    stop=$out/$p.logins-stop
    root_logins "$logins" "$stop" &
    local logger=$!

    # The watcher ends with the runaway or the window; a thrashing guest may be late.
    local t1=$SECONDS
    if wait_until $((window + 300)) ssh_root_within 60 'test -s /tmp/bench-watch.txt'; then
        watch=$(ssh_root_within 60 'cat /tmp/bench-watch.txt' || true)
    else
        say "$p: the guest has not answered for $((SECONDS - t1)) s; waiting up to 600 s more"
        if wait_until 600 ssh_root_within 60 true; then
            rec "$p" guest "stopped answering; answered again after $((SECONDS - t1)) s"
            watch=$(ssh_root_within 60 'cat /tmp/bench-watch.txt' || true)
        else
            rec "$p" guest "stopped answering for over $((SECONDS - t1)) s: QEMU hard-reset"
        fi
    fi
    rec "$p" watch "$watch"
    touch "$stop"
    if vm_alive && ssh_root_within 60 true; then
        if ssh_root_within 60 "kill -0 $pid 2>/dev/null"; then
            ssh_root_within 60 "kill -9 $pid" || true
            rec "$p" bench_killed 1
        fi
        ssh_root_within 60 'touch /tmp/bob-probe.stop' || true
        if wait_until 120 ssh_root_within 60 'test -s /tmp/bob-probe.txt'; then
            rec "$p" probe "$(ssh_root_within 60 'cat /tmp/bob-probe.txt')"
        fi
        # How it ended, from the guest's journal.
        local since=${t0%.*}
        rec "$p" kernel "$(ssh_root_within 120 "journalctl -k -o cat --since @$since --no-pager | grep -m1 'oom-kill:'" || true)"
        rec "$p" oomd "$(ssh_root_within 120 "journalctl -u systemd-oomd --since @$since -o cat --no-pager | grep -m1 -i 'killed'" || true)"
        rec "$p" watchdog "$(ssh_root_within 120 "journalctl SYSLOG_IDENTIFIER=contain-watchdog --since @$since -o json --no-pager" |
            python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
rows = [r for r in rows if r.get("CONTAIN_PID") == sys.argv[1]] or rows[-1:]
print(" ".join(f"{k}={rows[0].get(k)}" for k in ("CONTAIN_REASON", "CONTAIN_PID", "CONTAIN_COMM", "CONTAIN_USAGE")) if rows else "")
' "$pid" || true)"
        rec "$p" caps "$(ssh_root_within 60 "cd /sys/fs/cgroup$slice && echo memory.high \$(cat memory.high) memory.max \$(cat memory.max) memory.swap.max \$(cat memory.swap.max)" || true)"
    else
        hard_reset
    fi
    wait "$logger" || true
    rec "$p" logins "$(tr '\n' ' ' <"$logins")"
    rec "$p" pid "$pid"
    say "$p: done"
    sed "s/^/  $p: /" "$out/$p"
}

bench_boot "$suite"
target=$((($(user_limit alice memory_max) >> 20) * 3))
say "alice's memory_max $(mib "$(user_limit alice memory_max)") in $(basename "$VM_POLICY"): runaway target ${target} MiB"

phase baseline

say "installing $(basename "$deb") and rebooting"
t1=$SECONDS
if install_deb "$deb"; then
    say "installed + rebooted in $((SECONDS - t1)) s"
    phase contain
else
    tail -n 30 "$VM_RUN_DIR/install.log"
    dump_guest
    say "the install failed: no contain phase"
fi

rc=0
python3 "$VM_HERE/bench/containment-table.py" "$window" "$out/baseline" "$out/contain" || rc=$?
stop_vm
if ((rc == 0)); then rm -rf "$VM_RUN_DIR"; fi
echo "raw figures: $out"
exit "$rc"
