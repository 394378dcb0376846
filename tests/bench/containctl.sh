#!/usr/bin/env bash
# containctl status / metrics / check on a fixture host with N user slices (default 200):
# what the 15 s metrics timer costs, and how fast an admin's status comes back.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${SLICES:-200}
cargo build -q --release -p containctl
bin=$PWD/target/release/containctl
root=$(mktemp -d /dev/shm/containctl-bench.XXXXXX)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root/etc/contain" "$root/proc/pressure" "$root/proc/sys/kernel" "$root/run/contain"
cp tests/fixtures/etc/{passwd,group} "$root/etc/"
cp tests/vm/policy.toml "$root/etc/contain/policy.toml"
printf 'MemTotal: 2000000 kB\nSwapTotal: 1048572 kB\n' >"$root/proc/meminfo"
printf 'pswpout 0\n' >"$root/proc/vmstat"
echo "some avg10=0.00 avg60=0.00 avg300=0.00 total=0" >"$root/proc/pressure/memory"
echo 4194304 >"$root/proc/sys/kernel/pid_max"
echo 15000 >"$root/proc/sys/kernel/threads-max"
echo '{"outcome": "applied", "sources": ["/etc/contain/policy.toml"], "errors": []}' >"$root/run/contain/generator.json"
cg() { # path max
    local d=$root/sys/fs/cgroup$1
    mkdir -p "$d"
    echo $((RANDOM * 4096)) >"$d/memory.current"
    echo 629145600 >"$d/memory.high"
    echo "$2" >"$d/memory.max"
    echo 0 >"$d/memory.swap.max"
    echo 0 >"$d/memory.swap.current"
    echo 512 >"$d/pids.max"
    echo 3 >"$d/pids.current"
    printf 'some avg10=1.00 avg60=0.50 avg300=0.10 total=1\nfull avg10=0.50 avg60=0.20 avg300=0.00 total=1\n' >"$d/memory.pressure"
    printf 'low 0\nhigh 3\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n' >"$d/memory.events"
}
mkdir -p "$root/sys/fs/cgroup"
echo "cpu io memory pids" >"$root/sys/fs/cgroup/cgroup.controllers"
cg /user.slice 943718400
for i in $(seq 1 "$n"); do
    cg "/user.slice/user-$((20000 + i)).slice" 838860800
    echo "u$i:x:$((20000 + i)):$((20000 + i))::/home/u$i:/bin/bash" >>"$root/etc/passwd"
done

for cmd in "status --json" "metrics --no-journal" check; do
    hyperfine --shell=none -i --warmup 3 --runs "${RUNS:-50}" --export-json "$root/r.json" \
        "$bin --root $root $cmd" >/dev/null 2>&1 || true
    python3 - "$cmd" "$root/r.json" "$n" <<'PY'
import json, statistics, sys
t = sorted(json.load(open(sys.argv[2]))["results"][0]["times"])
print(f"containctl {sys.argv[1]:<22} {sys.argv[3]} user slices: median {statistics.median(t)*1000:.1f} ms, "
      f"max {t[-1]*1000:.1f} ms ({len(t)} runs)")
PY
done
