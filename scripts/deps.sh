#!/usr/bin/env bash
# Installs the Debian packages goro's builds need, only when they are missing.
# Usage: scripts/deps.sh [core|clang|bench|all]   (default: core)
set -euo pipefail
set_name=${1:-core}
pkgs=(g++ cmake make libboost-context-dev catch2 pkg-config)
case "$set_name" in
  core) ;;
  clang) pkgs+=(clang) ;;
  bench) pkgs+=(libbenchmark-dev golang-go libboost-fiber-dev gnuplot-nox valgrind) ;;
  all) pkgs+=(libbenchmark-dev golang-go libboost-fiber-dev gnuplot-nox valgrind clang) ;;
  *) echo "deps.sh: unknown set '$set_name'" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
