#!/usr/bin/env bash
# Non-interactive entry points land in alice's slice too: a cron job of hers,
# `sudo -u alice` (from the admin) and `su - alice -c` (from root).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
check_begin 03-noninteractive
uid=$(ssh_root 'id -u alice')

# in_slice WHAT OUTPUT: OUTPUT is the command's cgroup line, or what it said instead.
in_slice() {
    local cg
    cg=$(grep -m1 '^/' <<<"$2" || true)
    case "$cg" in
    /user.slice/user-"$uid".slice/*) figs+=("$1 ${cg#/user.slice/}") ;;
    /*) errs+=("$1 ran in $cg") ;;
    *) errs+=("$1 did not run: $(tr '\n' ' ' <<<"${2:-no output}" | cut -c1-300)") ;;
    esac
}

# cron fires on the minute: install first, look last.
ssh_root 'rm -f /tmp/cron-cg.alice; echo "* * * * * sed -n s/^0:://p /proc/self/cgroup > /tmp/cron-cg.alice" | crontab -u alice -'

out=$(ssh_as admin 'sudo -n -u alice sed -n s/^0:://p /proc/self/cgroup 2>&1; echo "exit $?"' 2>&1 || true)
in_slice "sudo -u alice" "$out"

out=$(ssh_root 'su - alice -c "sed -n s/^0:://p /proc/self/cgroup" 2>&1; echo "exit $?"' 2>&1 || true)
in_slice "su - alice" "$out"

if wait_until 150 ssh_root 'test -s /tmp/cron-cg.alice'; then
    in_slice cron "$(ssh_root 'cat /tmp/cron-cg.alice')"
else
    errs+=("alice's cron job did not run within 150 s")
fi
ssh_root 'crontab -u alice -r; rm -f /tmp/cron-cg.alice' || true
# A failure names the module's own account of it, in the line a log's tail keeps.
((${#errs[@]} == 0)) || errs+=("module said: $(ssh_root "journalctl -b --no-pager -o cat | grep 'pam_contain(' | tail -n 4" | tr '\n' ' ' | cut -c1-600)")
finish "$name"
