#!/usr/bin/env bash
# Installs what building the .deb and running the VM proof need on a fresh
# Debian 12 machine that has only the Rust toolchain. Idempotent; run as root.
set -euo pipefail

APT_PKGS=(qemu-system-x86 qemu-utils mmdebstrap e2fsprogs openssh-client
          dpkg-dev libpam0g-dev lintian shellcheck
          ansible-core)   # bookworm's guest is installed through examples/ansible/
CARGO_DEB_VERSION=3.8.0

missing() {
    local p
    for p in "${APT_PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || echo "$p"
    done
}
# Two passes: installing qemu-system-x86 may remove a newer qemu-utils that
# conflicts with it; the second pass brings back the matching one.
updated=
for _ in 1 2; do
    mapfile -t todo < <(missing)
    ((${#todo[@]})) || break
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps.sh: need root to install: ${todo[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    [ -n "$updated" ] || { apt-get update -qq; updated=1; }
    apt-get install -y -qq --no-install-recommends "${todo[@]}" >/dev/null
done

if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi
