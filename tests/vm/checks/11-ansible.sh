#!/usr/bin/env bash
# The fleet's way (where run.sh installed contain through examples/ansible/): a policy
# change pushed through the role reaches a logged-in user's slice at once, without a reboot
# (the handler runs `containctl apply`); a broken policy is stopped by `containctl validate`
# before it is written; contain-metrics writes node-exporter's textfile. The test policy is
# put back through the role at the end.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
check_begin 11-ansible
if [ "${VM_INSTALLED_BY:-}" != ansible-playbook ]; then
    pass "$name" "skipped: contain was installed with ${VM_INSTALLED_BY:-apt-get} on this suite"
    exit 0
fi
uid=$(ssh_root 'id -u alice')
slice=/user.slice/user-$uid.slice
tasks=$(policy_get users.tasks_max)
new=$((tasks - 128))
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$VM_POLICY" "$work" "$tasks" "$new" <<'PY'
import sys
src, work, old, new = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
text = open(src).read()
assert f"\ntasks_max = {old}\n" in text
open(f"{work}/changed.toml", "w").write(text.replace(f"\ntasks_max = {old}\n", f"\ntasks_max = {new}\n", 1))
open(f"{work}/broken.toml", "w").write(text.replace(f"\ntasks_max = {old}\n", "\ntasks_max = 0\n", 1))
PY

# alice is logged in throughout (three playbook runs take minutes beside another guest).
ssh_as alice 'sleep 900' >/dev/null 2>&1 &
held=$!
wait_until 60 ssh_root "pgrep -u alice -x sleep >/dev/null && test -d /sys/fs/cgroup$slice" ||
    errs+=("alice's session did not start")
pids_is() { [ "$(cg_read "$slice" pids.max)" = "$1" ]; }
boot0=$(boot_id)
before=$(cg_read "$slice" pids.max || true)
[ "$before" = "$tasks" ] || errs+=("pids.max of alice's slice is $before before the change, not $tasks")

t=$SECONDS
if ansible_playbook -e "contain_deb=$(realpath "$(find_deb)")" -e "contain_policy_template=$work/changed.toml"; then
    figs+=("change pushed in $((SECONDS - t)) s")
    if wait_until 30 pids_is "$new"; then
        figs+=("alice's pids.max $before -> $new while logged in")
    else
        errs+=("pids.max of alice's slice is $(cg_read "$slice" pids.max || true) after the change, not $new")
    fi
    grep -q '^RUNNING HANDLER \[contain : Apply the contain policy\]' "$VM_RUN_DIR/ansible.log" ||
        errs+=("the role did not run its apply handler")
else
    errs+=("ansible-playbook failed on the changed policy: $(tail -n 5 "$VM_RUN_DIR/ansible.log" | tr '\n' ' ')")
fi
[ "$(boot_id)" = "$boot0" ] || errs+=("the guest rebooted")

# A policy containctl validate refuses never reaches the host.
sum0=$(ssh_root 'sha256sum /etc/contain/policy.toml')
if ansible_playbook -e "contain_deb=$(realpath "$(find_deb)")" -e "contain_policy_template=$work/broken.toml"; then
    errs+=("the role wrote a policy with tasks_max = 0")
else
    tail -n 30 "$VM_RUN_DIR/ansible.log" | grep -q 'failed to validate' ||
        errs+=("the broken policy failed for another reason: $(tail -n 5 "$VM_RUN_DIR/ansible.log" | tr '\n' ' ')")
    [ "$(ssh_root 'sha256sum /etc/contain/policy.toml')" = "$sum0" ] ||
        errs+=("the broken policy was written anyway")
    figs+=("broken policy refused by containctl validate")
fi

# The test policy back, through the role again.
if ansible_playbook -e "contain_deb=$(realpath "$(find_deb)")" -e "contain_policy_template=$VM_POLICY" &&
    wait_until 30 pids_is "$tasks"; then
    figs+=("restored")
else
    errs+=("the test policy was not restored (pids.max $(cg_read "$slice" pids.max || true))")
fi

# node-exporter's textfile collector gets contain's metrics.
if wait_until 60 ssh_root 'grep -q "^contain_generator_outcome{outcome=\"applied\"} 1" /var/lib/prometheus/node-exporter/contain.prom'; then
    figs+=("contain.prom written")
else
    errs+=("no contain.prom with an applied policy in /var/lib/prometheus/node-exporter")
fi

ssh_root 'pkill -u alice -xf "sleep 900"' >/dev/null 2>&1 || true
kill "$held" 2>/dev/null || true
wait "$held" 2>/dev/null || true
finish "$name"
