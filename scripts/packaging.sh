#!/usr/bin/env bash
# Builds and runs a tiny consumer of goro each way goro can be consumed, so
# packaging cannot silently break (see docs/packaging.md):
#   1. the version is the same in CMakeLists.txt, version.hpp and vcpkg.json
#   2. cmake --install into a temporary prefix, then find_package(goro CONFIG)
#   3. pkg-config (plain Makefile, no CMake) against that prefix
#   4. add_subdirectory: only goro::goro is built, nothing is installed; and
#      with GORO_INSTALL=ON under a parent that exports a target linking
#      goro::goro, goro installs into its own places beside the parent's
#   5. shared libraries and a dlopen()ed plugin using goro, built with hidden
#      visibility, on the program's runtime
#   6. FetchContent from a git URL (a file:// snapshot of this working tree)
# Works offline on Debian 12; installs missing Debian packages as root.
# Usage: scripts/packaging.sh      (work files in build-packaging/)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/deps.sh core
if ! command -v git >/dev/null; then
  echo "packaging.sh: installing git"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends git >/dev/null
fi

work=$root/build-packaging
rm -rf "$work"
mkdir -p "$work"
consumers=$root/packaging/consumers
version=$(sed -n 's/^project(goro VERSION \([0-9][0-9.]*\).*/\1/p' CMakeLists.txt)
[ -n "$version" ] || { echo "packaging.sh: no version in CMakeLists.txt" >&2; exit 1; }
# Consumers build without optimisation: this checks packaging, not speed.
cmake_opts=(-G "Unix Makefiles" -DCMAKE_BUILD_TYPE=Debug -Wno-dev)

step() { echo; echo "== packaging: $*"; }
fail() { echo "packaging.sh: FAILED: $*" >&2; exit 1; }
# run_consumer NAME PROGRAM: runs it; it prints a line and exits 0 when right.
run_consumer() {
  local out
  out=$("$2") || fail "$1: the consumer exited $? ($out)"
  echo "$1: $out"
  case "$out" in
    "goro $version"*) ;;
    *) fail "$1: the consumer reports another version than $version" ;;
  esac
}
# only_built_target LOG: the build log shows the consumer as the only target.
only_built_target() {
  local targets
  targets=$(sed -n 's/.*Built target \([^ ]*\).*/\1/p' "$1" | sort -u | tr '\n' ' ')
  [ "$targets" = "consumer " ] || fail "$1: built targets '$targets', want only 'consumer'"
}

step "version metadata"
cmake -P cmake/goroCheckManifests.cmake

step "cmake --install + find_package(goro $version CONFIG REQUIRED)"
# Configured for one prefix and installed into another: the installed files
# must not depend on the configure-time prefix.
cmake -S . -B "$work/goro" -DGORO_BUILD_TESTS=OFF -DGORO_BUILD_EXAMPLES=OFF \
      -DGORO_BUILD_BENCHMARKS=OFF -DCMAKE_INSTALL_PREFIX=/nonexistent/goro >/dev/null
cmake --install "$work/goro" --prefix "$work/prefix" >"$work/install.log"
for f in include/goro/goro.hpp include/goro/version.hpp share/goro/cmake/goroConfig.cmake \
         share/goro/cmake/goroConfigVersion.cmake share/goro/cmake/goroTargets.cmake \
         share/pkgconfig/goro.pc share/doc/goro/LICENSE; do
  [ -f "$work/prefix/$f" ] || fail "cmake --install did not install $f"
done
if grep -rq /nonexistent "$work/prefix"; then
  fail "installed files name the configure-time prefix: $(grep -rl /nonexistent "$work/prefix")"
fi
cmake -S "$consumers/find_package" -B "$work/find_package" "${cmake_opts[@]}" \
      -DCMAKE_PREFIX_PATH="$work/prefix" -DGORO_WANTED_VERSION="$version" >"$work/find_package.log"
grep -F "goro $version from $work/prefix/share/goro/cmake" "$work/find_package.log" ||
  fail "find_package did not find the goro just installed"
cmake --build "$work/find_package" -j "$(nproc)" >>"$work/find_package.log"
run_consumer find_package "$work/find_package/consumer"

step "pkg-config --cflags --libs goro"
export PKG_CONFIG_PATH=$work/prefix/share/pkgconfig
pkg-config --validate goro || fail "goro.pc does not validate"
[ "$(pkg-config --modversion goro)" = "$version" ] || fail "goro.pc says version $(pkg-config --modversion goro)"
echo "pkg-config --cflags --libs goro: $(pkg-config --cflags --libs goro)"
pkg-config --cflags goro | grep -q -- -fstack-clash-protection ||
  fail "goro.pc's Cflags lack -fstack-clash-protection"
make -s -f "$consumers/pkg-config/Makefile" OUT="$work/pkg-config-consumer" CXXFLAGS=-O0
run_consumer pkg-config "$work/pkg-config-consumer"
unset PKG_CONFIG_PATH

step "add_subdirectory(goro)"
cmake -S "$consumers/add_subdirectory" -B "$work/add_subdirectory" "${cmake_opts[@]}" \
      -DGORO_SOURCE_DIR="$root" >"$work/add_subdirectory.log"
cmake --build "$work/add_subdirectory" -j "$(nproc)" >>"$work/add_subdirectory.log"
only_built_target "$work/add_subdirectory.log"
cmake --install "$work/add_subdirectory" --prefix "$work/subproject-prefix" >/dev/null
if [ -e "$work/subproject-prefix" ]; then
  fail "goro as a subproject installed files: $(find "$work/subproject-prefix" -type f)"
fi
run_consumer add_subdirectory "$work/add_subdirectory/consumer"

step "add_subdirectory(goro) with GORO_INSTALL=ON, exported by a library"
# The parent includes GNUInstallDirs first and installs its own LICENSE: goro's
# files go to goro's places, and the parent's stay its own.
cmake -S "$consumers/add_subdirectory_install" -B "$work/subproject-install" "${cmake_opts[@]}" \
      -DGORO_SOURCE_DIR="$root" >"$work/subproject-install.log"
cmake --install "$work/subproject-install" --prefix "$work/subproject-install-prefix" \
      >>"$work/subproject-install.log"
sub=$work/subproject-install-prefix
for f in include/goro/goro.hpp share/goro/cmake/goroConfig.cmake share/pkgconfig/goro.pc \
         share/goro_consumer_lib/cmake/goro_consumer_libConfig.cmake; do
  [ -f "$sub/$f" ] || fail "GORO_INSTALL=ON as a subproject did not install $f"
done
cmp -s "$root/LICENSE" "$sub/share/doc/goro/LICENSE" ||
  fail "GORO_INSTALL=ON as a subproject: share/doc/goro/LICENSE is not goro's LICENSE"
cmp -s "$consumers/add_subdirectory_install/LICENSE" "$sub/share/doc/goro_consumer_lib/LICENSE" ||
  fail "GORO_INSTALL=ON as a subproject: goro's install replaced the parent's share/doc/goro_consumer_lib/LICENSE"
cmake -S "$consumers/add_subdirectory_install/downstream" -B "$work/subproject-downstream" \
      "${cmake_opts[@]}" -DCMAKE_PREFIX_PATH="$sub" >"$work/subproject-downstream.log"
grep -F "goro $version from $sub/share/goro/cmake" "$work/subproject-downstream.log" ||
  fail "the downstream project did not find the goro its library installed"
cmake --build "$work/subproject-downstream" -j "$(nproc)" >>"$work/subproject-downstream.log"
run_consumer subproject-install "$work/subproject-downstream/consumer"

step "shared libraries and plugins built with hidden visibility"
# docs/packaging.md, "Shared libraries and plugins": with goro's includes
# wrapped in visibility push(default), a linked library and a dlopen()ed
# plugin (the program built with ENABLE_EXPORTS) run fibers on the program's
# runtime.
cmake -S "$consumers/shared_library" -B "$work/shared_library" "${cmake_opts[@]}" \
      -DGORO_SOURCE_DIR="$root" >"$work/shared_library.log"
cmake --build "$work/shared_library" -j "$(nproc)" >>"$work/shared_library.log"
run_consumer shared_library "$work/shared_library/consumer_shared"
run_consumer plugin "$work/shared_library/consumer_plugin"

step "FetchContent from a git URL"
# A one-commit repository holding this working tree as it is (tracked and
# untracked files, .gitignore respected), so uncommitted work is tested too.
snapshot=$work/goro.git
mkdir -p "$snapshot"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -C "$root" ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf - | tar -xf - -C "$snapshot"
else
  tar --exclude='./build*' --exclude=./.git -cf - . | tar -xf - -C "$snapshot"
fi
git -C "$snapshot" init -q -b main
git -C "$snapshot" add -A
git -C "$snapshot" -c user.name=goro -c user.email=goro@localhost \
    -c commit.gpgsign=false commit -q -m "goro snapshot for packaging.sh"
cmake -S "$consumers/fetchcontent" -B "$work/fetchcontent" "${cmake_opts[@]}" \
      -DGORO_GIT_URL="file://$snapshot" -DGORO_GIT_TAG=main >"$work/fetchcontent.log"
[ -f "$work/fetchcontent/_deps/goro-src/include/goro/version.hpp" ] ||
  fail "FetchContent did not clone goro into _deps/goro-src"
cmake --build "$work/fetchcontent" -j "$(nproc)" >>"$work/fetchcontent.log"
only_built_target "$work/fetchcontent.log"
run_consumer fetchcontent "$work/fetchcontent/consumer"

echo
echo "packaging: find_package, pkg-config, add_subdirectory (plain and GORO_INSTALL=ON), shared-library and FetchContent consumers all built and ran (goro $version)"
