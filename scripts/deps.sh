#!/bin/sh
# Installs the Debian packages wsjobd needs to build, test and run, if any are
# missing.  Uses sudo when not root.  Safe to run repeatedly: with nothing
# missing it does nothing (no apt-get update, no network).
set -e
PKGS="gcc make pkg-config libevent-dev libmbedtls-dev libjansson-dev libsystemd-dev
libcurl4-openssl-dev check libsubunit-dev python3 python3-dev python3-websockets openssl mandoc
clang libclang-rt-14-dev prometheus valgrind systemd haproxy libhiredis-dev redis-server"

missing=""
for p in $PKGS; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in *"install ok installed"*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
