#!/usr/bin/env bash
# An IO storm on a throttled disk, as the seed's cloud volume was: QEMU caps the running
# guest's disk at 16 MiB/s (read + write, unseen by the guest), alice writes 3 files with
# dd conv=fsync in parallel, and meanwhile root logs in afresh and a unit in system.slice reads
# 8 MB with O_DIRECT, every few seconds until she is done; the same back to back before and
# after the storms, for the idle figures. With a per-user write cap below the volume's rate in
# force (a policy drop-in, applied live; Debian's kernels have no io.latency): root's fresh
# ssh login stays within 1.5x its idle median, the system.slice read within 2x, and alice's
# writes finish at >= 30% of the volume's rate. The login's limit is the CPU alice's dd takes
# while it fills the page cache: at root's and system.slice's CPUWeight 200 against her 100 it
# came to 1.51x, at 1000 (asserted) it keeps 10/11 of the CPU. 16 idle logins and 11-15 in
# the storm: under TCG one login's time swings by half between neighbours
# (BENCHMARKS.md); the storm's pause leaves alice the CPU her writes need (logins back to
# back took her down to 32%). As installed (IOWeight only), the same is measured and
# reported only.
# Last, the cap's drop-in removed and applied leaves alice's running slice, and an
# io_scheduler drop-in applied puts BFQ on the disk with system.slice's IOWeight carried
# over to BFQ's scale.
# The logins it times move with the other guest's work under TCG: it has the host to itself.
# vm-alone
set -euo pipefail
# shellcheck disable=SC1091 # lib.sh: followed by shellcheck -x
. "$(dirname "$0")/../lib.sh"
check_begin 13-io-storm
disk_bps=16777216
mb=150
alice=$(ssh_root 'id -u alice')

# The kernel's scheduler as booted (the test policy sets no io_scheduler), restored at the end.
sched0=$(ssh_root 'sed "s/.*\[\(.*\)\].*/\1/" /sys/block/vda/queue/scheduler')
held=
cleanup() {
    [ -z "$held" ] || kill "$held" 2>/dev/null || true
    vm_disk_throttle 0 >/dev/null 2>&1 || true
    ssh_root 'pkill -u alice -x dd; touch /tmp/io-dstate.stop; rm -f /home/alice/io-* /tmp/io-storm.* /var/tmp/io-probe
        rm -f /etc/contain/policy.d/50-io*.toml /run/systemd/system/iosampler.slice && containctl apply; echo '"$sched0"' >/sys/block/vda/queue/scheduler' >/dev/null 2>&1 || true
}
trap cleanup EXIT

# alice stays logged in throughout: her slice lives on between the storms, and the drop-in
# below must reach it live.
ssh_as alice 'sleep 900' >/dev/null 2>&1 &
held=$!
wait_until 60 ssh_root "test -d /sys/fs/cgroup/user.slice/user-$alice.slice" || errs+=("alice's slice did not appear")
ssh_root 'dd if=/dev/urandom of=/var/tmp/io-probe bs=1M count=8 conv=fsync status=none'
# Root's slice weighs as system.slice (the generator's drop-in for exempt accounts), 10 to a
# user's 1 in the test policy as in the shipped one.
weights=$(ssh_root 'cat /sys/fs/cgroup/user.slice/user-0.slice/cpu.weight /sys/fs/cgroup/system.slice/cpu.weight' | xargs)
[ "$weights" = "1000 1000" ] || errs+=("root's and system.slice's cpu.weight are '$weights', want 1000 1000")
got=$(vm_disk_throttle "$disk_bps") || errs+=("QEMU refused the disk throttle")
[ "${got:-0}" = "$disk_bps" ] || errs+=("QEMU reports a disk limit of ${got:-?}, want $disk_bps")

# idle: eight root logins and system.slice reads from cold caches, as the storm starts;
# run before the storms and again after them, so that both brackets make the idle figure
# (the other suite's guest shares the host's CPUs and a login's time drifts with it).
# What the guest's CPU did meanwhile: vm-cpu.py's shares since its mark.
copy_in "$VM_HERE/tools/vm-cpu.py" /usr/local/bin/vm-cpu.py
ssh_root 'chmod 755 /usr/local/bin/vm-cpu.py'
# And on the host, what the guest cannot see: whether its emulated CPU got a host core.
cpu_mark() {
    ssh_root_within 60 "vm-cpu.py mark /tmp/io-cpu $alice"
    python3 "$VM_HERE/tools/qemu-cpu.py" mark "$VM_RUN_DIR/qemu-cpu" "$VM_QEMU_PID"
}
cpu_since() {
    echo "$(ssh_root_within 60 "vm-cpu.py since /tmp/io-cpu $alice" || echo "not read"); $(
        python3 "$VM_HERE/tools/qemu-cpu.py" since "$VM_RUN_DIR/qemu-cpu" "$VM_QEMU_PID" || echo "host: not read")"
}
idle_logins=() idle_probes=() idle_cpu=()
idle() {
    ssh_root 'sync; echo 3 >/proc/sys/vm/drop_caches'
    cpu_mark
    for _ in 1 2 3 4 5 6 7 8; do
        idle_logins+=("$(io_login_ms)")
        idle_probes+=("$(io_probe_ms)")
    done
    idle_cpu+=("$(cpu_since)")
}
idle
# x IDLE VALUE: VALUE as a multiple of IDLE ("?" where either is missing).
x() { python3 -c "import sys; a, b = sys.argv[1:]; print(f'{int(b) / int(a):.2f}x' if a.isdigit() and b.isdigit() and int(a) else '?')" "$1" "$2"; }

# What everyone waits for in the storm: the processes in uninterruptible sleep and where.
# The sampler runs in a top-level slice at CPUWeight 1, beside system.slice and user.slice
# (no dash in its name: that would nest it): at an equal weight it took a quarter of the
# guest's one CPU from the very logins it times.
copy_in "$VM_HERE/tools/vm-dstate.py" /usr/local/bin/vm-dstate.py
ssh_root 'chmod 755 /usr/local/bin/vm-dstate.py
    printf "[Slice]\nCPUWeight=1\n" >/run/systemd/system/iosampler.slice && systemctl daemon-reload'

# storm: alice writes 3 x mb MB with conv=fsync in parallel; a root login and a system.slice
# read every few seconds until she is done. Sets storm_s (or "unfinished"), logins, probes,
# waits (vm-dstate.py's tally).
storm() {
    ssh_root 'rm -f /home/alice/io-*; sync; echo 3 >/proc/sys/vm/drop_caches'
    ssh_root "rm -f /tmp/io-dstate*; systemd-run --quiet --collect --slice=iosampler.slice \
        /usr/local/bin/vm-dstate.py 600 /tmp/io-dstate.stop /tmp/io-dstate.txt $alice"
    ssh_within 120 alice "rm -f /tmp/io-storm.*; nohup sh -c 'date +%s.%N >/tmp/io-storm.start
        for i in 1 2 3; do dd if=/dev/zero of=\$HOME/io-\$i bs=1M count=$mb conv=fsync status=none & done
        wait; date +%s.%N >/tmp/io-storm.end' >/dev/null 2>&1 &"
    cpu_mark
    # Every byte at a tenth of the volume's rate, at most.
    local end=$((SECONDS + 3 * mb * 1048576 * 10 / disk_bps + 60))
    logins=() probes=()
    while ((SECONDS < end)) && ! ssh_root_within 60 test -e /tmp/io-storm.end; do
        logins+=("$(io_login_ms)")
        probes+=("$(io_probe_ms)")
        sleep 2
    done
    storm_cpu=$(cpu_since)
    storm_s=$(ssh_root_within 60 'test -e /tmp/io-storm.end && awk "BEGIN {print $(cat /tmp/io-storm.end) - $(cat /tmp/io-storm.start)}"' || echo unfinished)
    ssh_root_within 60 'pkill -u alice -x dd' || true
    ssh_root_within 60 'touch /tmp/io-dstate.stop'
    wait_until 30 ssh_root 'test -s /tmp/io-dstate.txt' && waits=$(ssh_root 'cat /tmp/io-dstate.txt') || waits="none read"
}

# As installed (IOWeight only, which does nothing on this disk): figures, not judged, on
# IO_CONTRAST_SUITES (trixie unless set; `make bench-vm-io` measures it on either).
before=()
if [[ " ${IO_CONTRAST_SUITES-trixie} " == *" $VM_SUITE "* ]]; then
    storm
    sl=$(median <<<"${logins[*]}") sp=$(median <<<"${probes[*]}")
    before=("$(median <<<"${probes[*]}")" "$(median <<<"${logins[*]}")" "${storm_s%.*}" "$waits" "$storm_cpu")
fi

# The IO protection, added as an admin would: a policy drop-in capping each user's writes
# below the volume's rate, applied without a reboot; then on alice's slice, on the disk
# behind /.
cap=6815744
ssh_root "printf '[users]\nio_write_bandwidth_max = \"6656K\"\n' >/etc/contain/policy.d/50-io.toml &&
    containctl apply >/dev/null" || errs+=("containctl apply refused the IO drop-in")
dev=$(ssh_root "cat /sys/block/vda/dev")
iomax=$(cg_read "/user.slice/user-$alice.slice" io.max || true)
grep -q "^$dev .*wbps=$cap" <<<"$iomax" || errs+=("alice's io.max is '${iomax:-empty}', want wbps=$cap on $dev")
storm
idle
vm_disk_throttle 0 >/dev/null || errs+=("QEMU did not lift the disk throttle")
il=$(median <<<"${idle_logins[*]}") ip=$(median <<<"${idle_probes[*]}")

sl=$(median <<<"${logins[*]}") sp=$(median <<<"${probes[*]}")
if [ "$storm_s" = unfinished ]; then
    errs+=("alice's 3 x $mb MB under the cap did not finish in time")
else
    pct=$(python3 -c "print(f'{3 * $mb * 1048576 / $storm_s / $disk_bps * 100:.0f}')")
    figs+=("alice 3 x $mb MB in ${storm_s%.*} s, ${pct}% of the volume")
    # At this cap (40% of the volume), with the sampler out of the CPU's way and the host to
    # itself, she got 37-38%; at 47% the read reached 1.93x idle.
    ((pct >= 30)) || errs+=("alice's writes ran at ${pct}% of the volume's rate, under 30%")
fi
if [ "$ip" = none ] || [ "$sp" = none ]; then
    errs+=("no system.slice read finished (idle: ${idle_probes[*]}; storm: ${probes[*]})")
else
    figs+=("capped: system.slice 8 MB read median ${sp} ms in the storm ($(x "$ip" "$sp")), ${ip} ms idle (n=${#probes[@]})")
    ((sp <= 2 * ip)) || errs+=("the system.slice read took ${sp} ms in the storm, over 2x its idle ${ip} ms (${probes[*]})")
fi
((${#before[@]} == 0)) ||
    figs+=("as installed (IOWeight only): read ${before[0]} ms ($(x "$ip" "${before[0]}")), root's login $(x "$il" "${before[1]}"), alice's writes in ${before[2]} s, D-state samples (passes, comm@wchan:n): ${before[3]}; CPU: ${before[4]}")
if [ "$il" != none ] && [ "$sl" != none ]; then
    figs+=("capped: root's login median $(python3 -c "print(f'{$sl / 1000:.2f} s, {$sl / $il:.2f}x its idle {$il / 1000:.2f} s')") (n=${#logins[@]}, idle n=${#idle_logins[@]})")
    ((2 * sl <= 3 * il)) || errs+=("root's login took ${sl} ms in the storm, over 1.5x its idle ${il} ms (idle: ${idle_logins[*]}; storm: ${logins[*]})")
    figs+=("root's logins in ms, idle: ${idle_logins[*]}; capped storm: ${logins[*]}")
    figs+=("capped storm's D-state samples (passes, comm@wchan:n): $waits")
    figs+=("guest CPU, idle before: ${idle_cpu[0]}; capped storm: $storm_cpu; idle after: ${idle_cpu[1]:-}")
else
    errs+=("root's logins failed (idle: ${idle_logins[*]}; storm: ${logins[*]})")
fi

# The cap's drop-in removed and applied: alice's running slice is uncapped again.
ssh_root 'rm /etc/contain/policy.d/50-io.toml && containctl apply >/dev/null' || errs+=("containctl apply failed without the IO drop-in")
iomax=$(cg_read "/user.slice/user-$alice.slice" io.max || true)
! grep -q "wbps=$cap" <<<"$iomax" || errs+=("alice's io.max is still '$iomax' after the drop-in was removed and applied")

# io_scheduler: the boot's contain-io-scheduler.service ran (the policy sets none); a
# drop-in applied puts BFQ on the disk, and system.slice's IOWeight=200 reaches BFQ's scale.
ssh_root 'systemctl is-active --quiet contain-io-scheduler.service' ||
    errs+=("contain-io-scheduler.service is $(ssh_root 'systemctl is-active contain-io-scheduler.service' || true)")
out=$(ssh_root "printf '[system]\nio_scheduler = \"bfq\"\n' >/etc/contain/policy.d/50-io-bfq.toml && containctl apply") ||
    errs+=("containctl apply with io_scheduler failed: $(tail -n2 <<<"$out" | tr '\n' ' ')")
[[ "$out" == *"IO scheduler on vda (/"*"bfq"* ]] || errs+=("apply did not report vda's scheduler: $(tail -n3 <<<"$out" | tr '\n' ' ')")
sched=$(ssh_root 'cat /sys/block/vda/queue/scheduler')
[[ "$sched" == *"[bfq]"* ]] || errs+=("vda's scheduler is '$sched' after apply, want [bfq]")
bfqw=$(cg_read /system.slice io.bfq.weight || true)
[ "$bfqw" = "default 109" ] || errs+=("system.slice's io.bfq.weight is '${bfqw:-missing}', want 'default 109' (IOWeight=200)")
figs+=("io_scheduler applied: vda $sched0 → bfq, system.slice io.bfq.weight ${bfqw:-?}")

trap - EXIT
ssh_root 'pkill -u alice -xf "sleep 900"' >/dev/null 2>&1 || true
cleanup
finish "$name"
