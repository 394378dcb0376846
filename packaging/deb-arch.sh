#!/bin/sh
# Prints the Debian architecture (amd64, arm64, armhf, ...) of a Rust target triple, as
# dpkg-architecture maps its GNU system type: the name of the package's variant.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 RUST-TARGET" >&2; exit 2; }
gnu=$(printf '%s\n' "$1" | sed 's/-unknown-/-/')
exec dpkg-architecture -t "$gnu" -qDEB_HOST_ARCH 2>/dev/null
