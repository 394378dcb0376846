#!/usr/bin/env bash
# systemd-oomd polices user.slice, docker.slice and the service tree's slice, and
# never system.slice (the operator's way in).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
check_begin 04-oomctl

# oomd watches only live cgroups: make sure each tree has one.
ssh_root 'systemctl start docker.slice t3-serve@vmcheck.service' || errs+=("cannot start docker.slice / t3-serve@vmcheck")
tree=$(ssh_root 'systemctl show -P ControlGroup "$(systemctl show -P Slice t3-serve@vmcheck.service)"')
want=(/user.slice /docker.slice "$tree")

policed() { # prints the pressure-monitored paths
    ssh_root 'oomctl' | awk '/^Memory Pressure Monitored CGroups:/ {on=1; next} /^[A-Z]/ {on=0} on && /Path:/ {print $2}'
}
has_all() {
    local paths p
    paths=$(policed)
    for p in "${want[@]}"; do grep -qxF "$p" <<<"$paths" || return 1; done
}
wait_until 60 has_all || true
paths=$(policed || true)
for p in "${want[@]}"; do
    if grep -qxF "$p" <<<"$paths"; then
        # The path's own entry, not one below it (user@0.service has a limit of its own).
        # (Through the environment: awk -v would read the \x2d of an escaped unit name.)
        limit=$(ssh_root 'oomctl' | want="Path: $p" awk '{ line = $0; sub(/^[ \t]+/, "", line) }
            line == ENVIRON["want"] { on = 1; next } on && /Memory Pressure Limit:/ { sub(/.*Limit: /, ""); print; exit }')
        figs+=("$p ${limit:-?}")
    else
        errs+=("$p not policed")
    fi
done
if grep -qx '/system.slice' <<<"$paths"; then errs+=("system.slice is policed"); fi
# Only the tree's own slice may be policed under system.slice.
while read -r p; do
    case "$p" in /system.slice/*) [ "$p" = "$tree" ] || errs+=("$p policed") ;; esac
done <<<"$paths"
dur=$(ssh_root 'oomctl' | sed -n 's/^Default Memory Pressure Duration: //p')
figs+=("duration ${dur:-?}")
ssh_root 'systemctl stop t3-serve@vmcheck.service' || true
finish "$name"
