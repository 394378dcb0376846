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
# With a .deb (target/debian or CONTAIN_DEB) it is installed first, as run.sh does; without
# one (or with BENCH_IO_INSTALL=0) contain's IOWeight settings are applied at runtime and
# the table says so.
#   tests/vm/bench/io.sh [SUITE]     (bookworm by default)
# BENCH_IO_PHASES picks phases (default "installed latency cap both bfq"). It reports, it does
# not judge: non-zero only if something broke (no VM, no figures).
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

suite=${1:-bookworm}
mb=${BENCH_IO_MB:-400}
latency=${BENCH_IO_LATENCY:-50ms}
cap=${BENCH_IO_CAP:-8M}
phases=${BENCH_IO_PHASES:-installed latency cap both bfq}
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

phase idle
for p in $phases; do phase "$p"; done

rc=0
# shellcheck disable=SC2086 # phases is a list of words
python3 "$VM_HERE/bench/io-table.py" "$out" idle $phases || rc=$?
stop_vm
if ((rc == 0)); then rm -rf "$VM_RUN_DIR"; fi
echo "raw figures: $out"
exit "$rc"
