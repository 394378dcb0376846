#!/usr/bin/env bash
# docker: the package routed containers into docker.slice; a container from a
# local tarball (no registry) runs there under the policy's caps.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
check_begin 07-docker

ssh_root 'cat /etc/docker/daemon.json 2>/dev/null' | grep -q '"cgroup-parent": *"docker.slice"' ||
    errs+=("/etc/docker/daemon.json has no cgroup-parent docker.slice")
wait_until 120 ssh_root 'docker info >/dev/null' || errs+=("dockerd not answering")
figs+=("driver $(ssh_root "docker info -f '{{.CgroupDriver}} cgroup v{{.CgroupVersion}}'" || echo ?)")

ssh_root 'docker rm -f vmcheck >/dev/null 2>&1; docker import /opt/contain-test/busybox-rootfs.tar contain-test/busybox:vm >/dev/null' ||
    errs+=("docker import failed")
if ssh_root 'docker run -d --name vmcheck --network none contain-test/busybox:vm sleep 600 >/dev/null'; then
    pid=$(ssh_root "docker inspect -f '{{.State.Pid}}' vmcheck")
    cg=$(ssh_root "sed -n 's/^0:://p' /proc/$pid/cgroup")
    case "$cg" in
    /docker.slice/*) figs+=("container in $(cut -c1-30 <<<"$cg")…") ;;
    *) errs+=("container in $cg") ;;
    esac
    for pair in memory_max:memory.max memory_swap_max:memory.swap.max; do
        key=${pair%%:*} file=${pair#*:}
        want=$(policy_get "docker.$key")
        got=$(cg_read /docker.slice "$file" 2>/dev/null || echo missing)
        [ "$got" = "$want" ] || errs+=("docker.slice $file $got, want $want")
        figs+=("docker.slice $file $(mib "$got")")
    done
    ssh_root 'docker rm -f vmcheck >/dev/null' || true
else
    errs+=("docker run failed: $(ssh_root 'docker run --rm --network none contain-test/busybox:vm true 2>&1 | tail -n1' || true)")
fi

# An upgrade keeps the admin's own cgroup-parent: the same package again runs its postinst
# as an upgrade (configure with the old version). docker is not restarted: nothing moves.
ssh_root 'cp /etc/docker/daemon.json /root/daemon.json.orig &&
    sed -i "s/\"cgroup-parent\": *\"docker.slice\"/\"cgroup-parent\": \"admin.slice\"/" /etc/docker/daemon.json'
# The package file as run.sh tested it (on a suite installed through Ansible, none is in /root).
deb=$(find_deb)
if copy_in "$deb" /root/contain-upgrade.deb &&
    ssh_root 'DEBIAN_FRONTEND=noninteractive dpkg -i /root/contain-upgrade.deb' >"$VM_RUN_DIR/reinstall.log" 2>&1; then
    if ssh_root 'grep -q "\"cgroup-parent\": *\"admin.slice\"" /etc/docker/daemon.json'; then
        figs+=("the admin's cgroup-parent survived an upgrade")
    else
        errs+=("an upgrade replaced the admin's cgroup-parent: $(ssh_root 'grep cgroup-parent /etc/docker/daemon.json' || true)")
    fi
else
    errs+=("reinstalling the package failed: $(tail -n1 "$VM_RUN_DIR/reinstall.log")")
fi
ssh_root 'cp /root/daemon.json.orig /etc/docker/daemon.json' || errs+=("cannot restore daemon.json")
finish "$name"
