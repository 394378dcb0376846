#!/usr/bin/env bash
# With the system bus stopped, root still logs in over ssh, while a normal user
# gets the policy's failure action ([login] on_failure). Numbered late: once the bus and
# logind are restarted, a user manager from before cannot move processes into new scopes
# (systemd-run --user --scope fails), which the escape checks need.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
check_begin 69-dbus-down
action=$(policy_get login.on_failure deny)

t0=$(guest_now)
ssh_root 'systemctl stop dbus.socket dbus.service' || errs+=("cannot stop dbus")
ssh_root '! systemctl is-active --quiet dbus.service' || errs+=("dbus still active")

t=$SECONDS
if out=$(ssh_within 120 root 'echo in'); [ "$out" = in ]; then
    figs+=("root in after $((SECONDS - t)) s")
else
    errs+=("root could not log in with dbus down")
fi

t=$SECONDS
out=$(ssh_within 120 alice 'echo in; sed -n s/^0:://p /proc/self/cgroup' 2>&1 || true)
took=$((SECONDS - t))
case "$action" in
deny)
    if grep -qx in <<<"$out"; then
        errs+=("alice got a shell with dbus down (on_failure = deny): $(tail -n1 <<<"$out")")
    else
        figs+=("alice denied after $took s")
    fi
    ;;
allow)
    grep -qx in <<<"$out" && figs+=("alice allowed after $took s") || errs+=("alice denied though on_failure = allow")
    ;;
esac
# sudo takes a session error as non-fatal and su must not run the command either: a deny
# from the module holds for both (root's own shell above is never denied).
for via in "sudo -n -u alice" "su alice -c"; do
    out=$(ssh_root "$via 'echo in'" 2>&1 || true)
    case "$action" in
    deny) grep -qx in <<<"$out" && errs+=("$via ran with dbus down (on_failure = deny)") ||
        figs+=("$via denied") ;;
    allow) grep -qx in <<<"$out" && figs+=("$via allowed") || errs+=("$via denied though on_failure = allow") ;;
    esac
done
jline=$(ssh_root "journalctl --since @${t0%.*} --no-pager -o cat | grep -m1 'pam_contain(sshd:session)'" || true)
figs+=("journal: $(cut -c1-100 <<<"${jline:-none}")")

# Put the bus back (logind lost it too); the next check reboots anyway.
ssh_root 'systemctl start dbus.socket dbus.service && systemctl restart systemd-logind' ||
    errs+=("cannot restart dbus")
wait_until 60 ssh_as alice true || errs+=("alice cannot log in once dbus is back")
finish "$name"
