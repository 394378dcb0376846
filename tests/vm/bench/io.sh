#!/usr/bin/env bash
# IO storms on a throttled disk (a benchmark, not part of make test). One VM of SUITE whose
# disk QEMU caps at BENCH_IO_BPS (default 16 MiB/s, read + write, unseen by the guest as a
# cloud volume's limit is). alice writes 3 files of BENCH_IO_MB (default 400) MB with
# dd conv=fsync in parallel while root logs in afresh over ssh every few seconds and a unit in
# system.slice reads 8 MB with O_DIRECT; once idle, then once per IO setting, all in one boot:
#   installed  contain's IO settings as installed (IOWeight=200 system, 100 per user)
#   latency    + IODeviceLatencyTargetSec=/ BENCH_IO_LATENCY on system.slice and root's slice
#   cap        + IOReadBandwidthMax/IOWriteBandwidthMax=/ BENCH_IO_CAP on alice's slice
#   both       latency and cap together
#   bfq        the BFQ scheduler on the disk (IOWeight honoured), if the kernel has it
# Two more phases, not in the default list, replay a page-cache thrash instead of the storm:
# alice re-reads a file of BENCH_IO_THRASH_MB (default 1024) MB, larger than her
# memory_high, with BENCH_IO_READERS (default 3) readers spread over it, so that no pass finds
# the file in her page cache; figures for BENCH_IO_THRASH_S (default 180) seconds. The file is
# written once, with the disk unthrottled, before the first phase.
#   thrash      as installed
#   thrash-cap  + io_read_bandwidth_max = BENCH_IO_CAP for every user, by a policy.d drop-in
#               and `containctl apply` (IOReadBandwidthMax at runtime without a .deb)
# With a .deb (target/debian or CONTAIN_DEB) it is installed first, as run.sh does; without
# one (or with BENCH_IO_INSTALL=0) contain's IOWeight settings are applied at runtime and
# the table says so.
#   tests/vm/bench/io.sh [SUITE]     (bookworm by default)
# BENCH_IO_PHASES picks phases (default "installed latency cap both bfq"; the thrash alone:
# BENCH_IO_PHASES="thrash thrash-cap"). It reports, it does not judge: non-zero only if
# something broke (no VM, no figures).
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

suite=${1:-bookworm}
mb=${BENCH_IO_MB:-400}
latency=${BENCH_IO_LATENCY:-50ms}
cap=${BENCH_IO_CAP:-8M}
phases=${BENCH_IO_PHASES:-installed latency cap both bfq}
thrash_mb=${BENCH_IO_THRASH_MB:-1024}
readers=${BENCH_IO_READERS:-3}
thrash_s=${BENCH_IO_THRASH_S:-180}
export VM_DISK_THROTTLE_BPS=${BENCH_IO_BPS:-16777216}
# The longest a storm may take: every byte at a tenth of the throttled rate.
window=$((3 * mb * 1048576 * 10 / VM_DISK_THROTTLE_BPS + 120))
bench_results contain-bench-io

# apply PHASE on|off: the phase's IO setting, at runtime.
apply() {
    local p=$1 on=$2 lat capr='' capw=''
    # An empty IODeviceLatencyTargetSec= fails over D-Bus (systemd 257): reset with infinity.
    lat="/ infinity"
    if [ "$on" = on ]; then lat="/ $latency" capr="/ $cap" capw="/ $cap"; fi
    case $p in
    latency | both)
        ssh_root "systemctl set-property --runtime system.slice 'IODeviceLatencyTargetSec=$lat' &&
            systemctl set-property --runtime user-0.slice 'IODeviceLatencyTargetSec=$lat'"
        ;;&
    cap | both)
        ssh_root "systemctl set-property --runtime user-$alice.slice 'IOReadBandwidthMax=$capr' 'IOWriteBandwidthMax=$capw'"
        ;;
    bfq)
        if [ "$on" = on ]; then
            ssh_root 'modprobe bfq 2>/dev/null; grep -qw bfq /sys/block/vda/queue/scheduler &&
                echo bfq >/sys/block/vda/queue/scheduler' || return 1
        else
            ssh_root "echo $sched >/sys/block/vda/queue/scheduler"
        fi
        ;;
    esac
}

# phase NAME: idle (no storm) or a storm under NAME's setting; figures to $out/NAME.
phase() {
    local p=$1 logins=() probes=() end
    ssh_root "rm -f /home/alice/io-* /tmp/io-storm.*; sync; echo 3 >/proc/sys/vm/drop_caches"
    if [ "$p" = idle ]; then
        for _ in 1 2 3 4 5; do
            logins+=("$(io_login_ms)")
            probes+=("$(io_probe_ms)")
        done
    else
        if ! apply "$p" on; then
            say "$p: not available on this guest"
            rec "$p" skipped 1
            return
        fi
        say "$p: alice writes 3 x $mb MB (window $window s)"
        ssh_within 120 alice "nohup sh -c 'date +%s.%N >/tmp/io-storm.start
            for i in 1 2 3; do dd if=/dev/zero of=\$HOME/io-\$i bs=1M count=$mb conv=fsync status=none & done
            wait; date +%s.%N >/tmp/io-storm.end' >/dev/null 2>&1 &"
        end=$((SECONDS + window))
        # Paced, not waited on: a login and a probe every few seconds until the storm ends.
        while ((SECONDS < end)) && ! ssh_root_within 60 test -e /tmp/io-storm.end; do
            logins+=("$(io_login_ms)")
            probes+=("$(io_probe_ms)")
            sleep 2
        done
        rec "$p" storm_s "$(ssh_root_within 60 'test -e /tmp/io-storm.end && awk "BEGIN {print $(cat /tmp/io-storm.end) - $(cat /tmp/io-storm.start)}"' || echo unfinished)"
        ssh_root_within 60 "pkill -u alice -x dd" || true
        apply "$p" off || true
    fi
    rec "$p" logins "${logins[*]}"
    rec "$p" probes "${probes[*]}"
    sed "s/^/  $p: /" "$out/$p"
}

# read_cap on|off: every user's reads capped at $cap as an admin would (a policy.d drop-in put
# in force by containctl apply); without contain installed, at runtime on alice's slice.
read_cap() {
    local v=
    if [ -n "$deb" ]; then
        if [ "$1" = on ]; then
            ssh_root "printf '[users]\nio_read_bandwidth_max = \"$cap\"\n' >/etc/contain/policy.d/50-bench-io.toml &&
                containctl apply >/dev/null"
        else
            ssh_root 'rm -f /etc/contain/policy.d/50-bench-io.toml && containctl apply >/dev/null'
        fi
    else
        [ "$1" = off ] || v="/ $cap"
        ssh_root "systemctl set-property --runtime user-$alice.slice 'IOReadBandwidthMax=$v'"
    fi
}

# thrash_counters: the guest's clock, then alice's slice's bytes read from the disk, its file
# refaults, memory.high and OOM-kill events and CPU time, the box's swap traffic and its CPUs'
# busy and total time (USER_HZ), as KEY=VALUE lines.
thrash_counters() {
    ssh_root_within 60 "cg=$acg; echo t=\$(date +%s.%N)
        awk '\$1 == \"usage_usec\" {print \"cpu_usec=\" \$2}' \$cg/cpu.stat
        awk '\$1 == \"cpu\" {print \"cpu_busy=\" \$2 + \$3 + \$4 + \$7 + \$8; print \"cpu_all=\" \$2 + \$3 + \$4 + \$5 + \$6 + \$7 + \$8}' /proc/stat
        awk '\$1 == \"$dev\" {for (i = 2; i <= NF; i++) if (\$i ~ /^rbytes=/) print \$i}' \$cg/io.stat
        awk '\$1 == \"workingset_refault_file\" {print \"refault=\" \$2}' \$cg/memory.stat
        awk '\$1 == \"high\" || \$1 == \"oom_kill\" {print \$1 \"=\" \$2}' \$cg/memory.events
        awk '/^pswp(in|out) / {print \$1 \"=\" \$2}' /proc/vmstat"
}

# thrash_figures BEFORE AFTER SAMPLE...: the thrash's figures as KEY=VALUE lines, from the
# counters before and after and the memory samples ("current,swap.current,some avg10").
thrash_figures() {
    python3 - "$VM_DISK_THROTTLE_BPS" "$@" <<'EOF'
import sys

bps, before, after, samples = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]


def kv(path):
    with open(path) as f:
        return dict(line.strip().split("=", 1) for line in f if "=" in line)


a, b = kv(before), kv(after)


def delta(k):
    return int(b.get(k, 0)) - int(a.get(k, 0))


secs = float(b["t"]) - float(a["t"])
mbs = delta("rbytes") / secs / 1e6
print(f"alice={mbs:.1f} MB/s read over {secs:.0f} s ({100 * mbs / (bps / 1e6):.0f}% of the disk)")
print(f"refault_mib={delta('refault') * 4096 / 1048576:.0f}")
for k in ("high", "oom_kill", "pswpin", "pswpout"):
    print(f"{k}={delta(k)}")
# Shares of one vCPU (alice) and of all the guest's vCPUs (busy: not idle, not waiting on IO).
print(f"alice_cpu_pct={delta('cpu_usec') / 1e4 / secs:.0f}")
if delta("cpu_all"):
    print(f"guest_busy_pct={100 * delta('cpu_busy') / delta('cpu_all'):.0f}")
rows = [s.split(",") for s in samples]
rows = [r for r in rows if len(r) == 3 and r[0].isdigit() and r[1].isdigit()]
if rows:
    print(f"mem_peak_mib={max(int(r[0]) for r in rows) / 1048576:.0f}")
    print(f"swap_peak_mib={max(int(r[1]) for r in rows) / 1048576:.0f}")
    print(f"pressure_some_avg10_max={max(float(r[2]) for r in rows):.1f}")
print(f"mem_samples={len(rows)}")
EOF
}

# thrash NAME: alice's readers under NAME's setting for $thrash_s seconds, a root login and a
# system.slice read every few seconds meanwhile; figures to $out/NAME.
thrash() {
    local p=$1 logins=() probes=() mem=() end
    ssh_root "sync; echo 3 >/proc/sys/vm/drop_caches"
    if [ "$p" = thrash-cap ] && ! read_cap on; then
        say "$p: the read cap was refused"
        rec "$p" skipped 1
        return
    fi
    rec "$p" io_max "$(ssh_root "cat $acg/io.max" | paste -sd' ')"
    thrash_counters >"$out/$p.before"
    # Each reader starts its passes at its own offset: between two readers' visits of a page
    # the whole file is read, so no pass finds it in alice's page cache.
    ssh_within 120 alice "nohup sh -c 'for i in \$(seq 0 $((readers - 1))); do
            off=\$((i * $thrash_mb / $readers))
            while :; do
                dd if=\$HOME/thrash.dat of=/dev/null bs=1M skip=\$off status=none
                dd if=\$HOME/thrash.dat of=/dev/null bs=1M count=\$off status=none
            done &
        done; wait' io-thrash-reader >/dev/null 2>&1 &"
    say "$p: alice re-reads $thrash_mb MB with $readers readers for $thrash_s s"
    end=$((SECONDS + thrash_s))
    while ((SECONDS < end)); do
        logins+=("$(io_login_ms)")
        probes+=("$(io_probe_ms)")
        mem+=("$(ssh_root_within 30 "cat $acg/memory.current $acg/memory.swap.current
            sed -n 's/^some avg10=\([0-9.]*\) .*/\1/p' $acg/memory.pressure" | paste -sd, || echo none)")
        sleep 2
    done
    thrash_counters >"$out/$p.after"
    # The loops first, so that none starts another pass; then their readers.
    ssh_root_within 60 'pkill -u alice -f io-thrash-reader; pkill -u alice -x dd' || true
    if [ "$p" = thrash-cap ]; then read_cap off || true; fi
    rec "$p" logins "${logins[*]}"
    rec "$p" probes "${probes[*]}"
    thrash_figures "$out/$p.before" "$out/$p.after" "${mem[@]}" >>"$out/$p"
    sed "s/^/  $p: /" "$out/$p"
}

bench_boot "$suite" "disk throttled to $VM_DISK_THROTTLE_BPS B/s"
deb=
[ "${BENCH_IO_INSTALL:-1}" = 0 ] || deb=$(find_deb || true)
if [ -n "$deb" ]; then
    say "installing $(basename "$deb") and rebooting"
    install_deb "$deb" || { tail -n 30 "$VM_RUN_DIR/install.log"; exit 1; }
    rec setup installed "$(basename "$deb")"
else
    say "no .deb: contain's IOWeight settings applied at runtime"
    ssh_root 'systemctl set-property --runtime system.slice IOWeight=200 && systemctl set-property --runtime user.slice IOWeight=100'
    rec setup installed "IOWeight at runtime (no .deb)"
fi
alice=$(ssh_root 'id -u alice')
# Every login of alice before the storm, so her slice exists for set-property.
ssh_within 120 alice true
[ -n "$deb" ] || ssh_root "systemctl set-property --runtime user-$alice.slice IOWeight=100"
sched=$(ssh_root "sed 's/.*\[\(.*\)\].*/\1/' /sys/block/vda/queue/scheduler")
rec setup scheduler "$sched"
rec setup iocost "$(ssh_root 'cat /sys/fs/cgroup/io.cost.qos 2>/dev/null | head -n1' || true)"
rec setup disk_bps "$VM_DISK_THROTTLE_BPS"
rec setup mb "$mb"
ssh_root 'dd if=/dev/urandom of=/var/tmp/io-probe bs=1M count=8 conv=fsync status=none'

acg=/sys/fs/cgroup/user.slice/user-$alice.slice
dev=$(ssh_root 'cat /sys/block/vda/dev')
held=
if [[ " $phases " == *" thrash"* ]]; then
    # alice stays logged in throughout: her slice lives between the phases, and the read cap
    # reaches it live.
    ssh_as alice 'sleep 7200' >/dev/null 2>&1 &
    held=$!
    wait_until 60 ssh_root "test -d $acg"
    rec setup alice_memory "high $(ssh_root "cat $acg/memory.high"), max $(ssh_root "cat $acg/memory.max"), swap.max $(ssh_root "cat $acg/memory.swap.max")"
    # Written once with the disk unthrottled: the writing is no part of the figures.
    t0=$SECONDS
    vm_disk_throttle 0 >/dev/null
    ssh_within 1800 alice "dd if=/dev/zero of=\$HOME/thrash.dat bs=1M count=$thrash_mb conv=fsync status=none"
    got=$(vm_disk_throttle "$VM_DISK_THROTTLE_BPS")
    [ "$got" = "$VM_DISK_THROTTLE_BPS" ] || { say "QEMU reports a disk limit of $got after the file"; exit 1; }
    say "alice's $thrash_mb MB file written in $((SECONDS - t0)) s (disk unthrottled)"
    rec setup thrash "$thrash_mb MB, $readers readers, $thrash_s s"
fi

phase idle
for p in $phases; do
    case $p in
    thrash*) thrash "$p" ;;
    *) phase "$p" ;;
    esac
done
[ -z "$held" ] || kill "$held" 2>/dev/null || true

rc=0
# shellcheck disable=SC2086 # phases is a list of words
python3 "$VM_HERE/bench/io-table.py" "$out" idle $phases || rc=$?
stop_vm
if ((rc == 0)); then rm -rf "$VM_RUN_DIR"; fi
echo "raw figures: $out"
exit "$rc"
