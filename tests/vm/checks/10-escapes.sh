#!/usr/bin/env bash
# alice cannot leave her capped slice: what she starts through systemd-run --user (a scope
# and a service), setsid, nohup and a double fork across a logout, tmux, at, a multiplexed
# ssh connection and a lingering user manager all stay under /user.slice/user-UID.slice,
# below her memory.max. (su, sudo -u and cron are 03-noninteractive's.)
set -euo pipefail
# shellcheck disable=SC1091 # lib.sh: followed by shellcheck -x
. "$(dirname "$0")/../lib.sh"
check_begin 10-escapes
alice_slice
cap=$(user_limit alice memory_max)
gdir=/tmp/contain-esc
ctl=$VM_RUN_DIR/ctl-alice

# An ssh of alice's through the control socket $ctl (the host is the client).
mux() { ssh "${VM_SSH_OPTS[@]}" -o "ControlPath=$ctl" -i "$VM_KEY" -p "$VM_PORT" "$@" </dev/null; }

cleanup() {
    mux -O exit alice@127.0.0.1 >/dev/null 2>&1 || true
    # terminate-user leaves the processes of logins already closed: pkill them.
    ssh_root "loginctl disable-linger alice; atq | awk '\$NF == \"alice\" {print \$1}' | xargs -r atrm
        loginctl terminate-user alice; pkill -u alice; rm -rf $gdir /tmp/at-cg.alice /tmp/esc-*.alice" >/dev/null 2>&1 || true
    wait_until 60 ssh_root '! pgrep -u alice' || ssh_root 'pkill -KILL -u alice' >/dev/null 2>&1 || true
}
trap cleanup EXIT

# where pid PID | where sleep N: "PID CGROUP LOWEST-MEMORY.MAX-UP-TO-THE-ROOT" (alice's
# oldest `sleep N`); nothing if there is no such process. Readable by alice (the at job).
cat >"$VM_RUN_DIR/where" <<'SH'
#!/bin/sh
case $1 in
pid) pid=$2 ;;
sleep) pid=$(pgrep -u alice -o -xf "(/usr)?(/bin/)?sleep $2") || exit 0 ;;
*) exit 2 ;;
esac
cg=$(sed -n 's/^0:://p' "/proc/$pid/cgroup" 2>/dev/null)
[ -n "$cg" ] || exit 0
p=$cg m=max
while [ -n "$p" ]; do
    v=$(cat "/sys/fs/cgroup$p/memory.max" 2>/dev/null || echo max)
    if [ "$v" != max ] && { [ "$m" = max ] || [ "$v" -lt "$m" ]; }; then m=$v; fi
    p=${p%/*}
done
echo "$pid $cg $m"
SH
ssh_root "rm -rf $gdir && mkdir -m 755 $gdir"
copy_in "$VM_RUN_DIR/where" "$gdir/where"
ssh_root "chmod 755 $gdir/where"

where() { ssh_root "$gdir/where $*" || true; }
running() { [ -n "$(where sleep "$1")" ]; }
# logged_out SESSION: logind has closed the login (left processes keep it "closing").
logged_out() {
    local st
    st=$(ssh_root "loginctl show-session '$1' -P State 2>/dev/null" || true)
    [ -z "$st" ] || [ "$st" = closing ]
}
# judge WHAT "PID CGROUP MAX": under alice's slice, and no looser than her cap.
judge() {
    local what=$1 pid cg m
    read -r pid cg m <<<"$2"
    if [ -z "${cg:-}" ]; then
        errs+=("$what: no process to look at")
    elif [[ $cg != "$slice"/* ]]; then
        errs+=("$what ESCAPED: pid $pid in $cg")
    elif [ "$m" = max ] || ((m > cap)); then
        errs+=("$what in $cg is under memory.max $m, above alice's $cap")
    else
        figs+=("$what $(sed -E 's/run-r?[0-9a-f]{16,}/run-…/' <<<"${cg#"$slice"/}")")
    fi
}
# after_logout WHAT SESSION: wait until logind has closed the login SESSION.
after_logout() {
    if [ -z "$2" ]; then
        errs+=("$1: the login reported no XDG_SESSION_ID")
    elif ! wait_until 60 logged_out "$2"; then
        errs+=("$1: login session $2 still open 60 s after ssh returned")
    fi
}

# 1. systemd-run --user: a scope and a service (asking for no memory cap of its own), looked
# at from inside the login: once it ends, her user manager stops (UserStopDelaySec) with both.
out=$(ssh_as alice "nohup systemd-run --user --scope sleep 7001 >/tmp/esc-scope.alice 2>&1 </dev/null &
    systemd-run --user --unit=contain-esc-svc -p MemoryMax=infinity sleep 7002 2>&1
    for i in \$(seq 240); do
        [ -n \"\$($gdir/where sleep 7001)\" ] && [ -n \"\$($gdir/where sleep 7002)\" ] && break
        sleep 0.25
    done
    echo \"scope \$($gdir/where sleep 7001)\"; echo \"service \$($gdir/where sleep 7002)\"" || true)
scope=$(sed -n 's/^scope //p' <<<"$out")
service=$(sed -n 's/^service //p' <<<"$out")
if [ -n "$scope" ]; then
    judge "systemd-run --scope" "$scope"
else
    errs+=("systemd-run --user --scope did not start within 60 s: $(ssh_root 'head -c 200 /tmp/esc-scope.alice' | tr '\n' ' ')")
fi
if [ -n "$service" ]; then
    judge "systemd-run service" "$service"
else
    errs+=("systemd-run --user --unit did not start within 60 s: $(tr '\n' ' ' <<<"$out" | cut -c1-200)")
fi
got=$(cg_read "$slice" memory.max)
if [ "$got" = "$cap" ]; then
    figs+=("slice memory.max $(mib "$got"), every process below")
else
    errs+=("alice's slice memory.max $got, want $cap")
fi

# 2. setsid, nohup and a double fork from one login, looked at after it ended.
sid=$(ssh_as alice 'setsid sleep 7003 >/dev/null 2>&1 </dev/null &
    nohup sleep 7004 >/dev/null 2>&1 </dev/null &
    ( ( sleep 7005 >/dev/null 2>&1 </dev/null & ) & )
    echo "$XDG_SESSION_ID"')
after_logout "setsid/nohup/double fork" "$sid"
for n in 7003:setsid 7004:nohup 7005:double-fork; do
    wait_until 30 running "${n%%:*}" || true
    judge "${n#*:}" "$(where sleep "${n%%:*}")"
done

# 3. tmux: started in one login, found again from the next one.
sid=$(ssh_as alice 'tmux new -d -s esc "sleep 7006"; echo "$XDG_SESSION_ID"')
after_logout tmux "$sid"
server=$(ssh_as alice 'tmux display -p -t esc "#{pid}"' || true)
if [ -n "$server" ]; then
    judge "tmux server" "$(where pid "$server")"
    judge "tmux child" "$(where sleep 7006)"
else
    errs+=("alice's tmux session was gone at her next login")
fi

# 4. an at job.
ssh_root 'rm -f /tmp/at-cg.alice'
ssh_root 'systemctl is-active --quiet atd.service' || errs+=("atd is not running")
out=$(ssh_as alice "echo '$gdir/where pid \$\$ > /tmp/at-cg.alice' | at now 2>&1" || true)
if wait_until 120 ssh_root 'test -s /tmp/at-cg.alice'; then
    judge "at job" "$(ssh_root 'cat /tmp/at-cg.alice')"
else
    errs+=("alice's at job did not run within 120 s ($(tr '\n' ' ' <<<"$out" | cut -c1-160))")
fi

# 5. ssh ControlMaster: a master login from the host, then a second session through its
# socket. Equal SSH_CONNECTION (client port included) proves the second one rode the first.
probe="echo \"\$SSH_CONNECTION\"; $gdir/where pid \$\$"
first=$(mux -o ControlMaster=yes -o ControlPersist=120 alice@127.0.0.1 "$probe" || true)
if mux -O check alice@127.0.0.1 2>/dev/null; then
    second=$(mux -o ControlMaster=no alice@127.0.0.1 "$probe" || true)
    if [ -n "$second" ] && [ "$(head -n1 <<<"$first")" = "$(head -n1 <<<"$second")" ]; then
        judge "ssh master" "$(sed -n 2p <<<"$first")"
        judge "ssh multiplexed" "$(sed -n 2p <<<"$second")"
    else
        errs+=("the second ssh session did not go through the master (${first%%$'\n'*} / ${second%%$'\n'*})")
    fi
else
    errs+=("no ssh control master for alice after the first login")
fi
mux -O exit alice@127.0.0.1 >/dev/null 2>&1 || true

# 6. linger: a user service of alice's keeps running with every login of hers ended.
ssh_root 'loginctl enable-linger alice'
wait_until 60 ssh_root "systemctl is-active --quiet user@$uid.service" || errs+=("user@$uid.service not active with linger")
ucg=$(ssh_root "systemctl show -P ControlGroup user@$uid.service")
[ "$ucg" = "$slice/user@$uid.service" ] || errs+=("user@$uid.service runs in ${ucg:-?}")
out=$(ssh_as alice 'systemd-run --user --unit=contain-esc-linger sleep 7009 2>&1' || true)
# Her logins are closed but their left processes keep them listed: end those. From
# systemd 256 on the user manager has a session of its own (class manager): it stays.
logins() {
    ssh_root 'for s in $(loginctl show-user alice -P Sessions); do
        case $(loginctl show-session "$s" -P Class 2>/dev/null) in manager*) ;; *) echo "$s" ;; esac
    done'
}
for s in $(logins); do
    ssh_root "systemctl stop \"\$(loginctl show-session $s -P Scope)\"" || true
done
no_logins() { [ -z "$(logins)" ]; }
wait_until 60 no_logins || errs+=("alice still has logins: $(logins | tr '\n' ' ')")
if wait_until 30 running 7009; then
    judge "lingering service ($(ssh_root 'loginctl show-user alice -P State' || echo ?))" "$(where sleep 7009)"
else
    errs+=("alice's lingering service is not running: $(tr '\n' ' ' <<<"$out" | cut -c1-200)")
fi

trap - EXIT
cleanup
ssh_root 'test ! -e /var/lib/systemd/linger/alice' || errs+=("linger still enabled for alice")
ssh_root '! pgrep -u alice' >/dev/null || errs+=("alice's processes are left over")
finish "$name"
