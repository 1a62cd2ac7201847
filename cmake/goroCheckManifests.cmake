# Checks that every place holding goro's version agrees with
# project(goro VERSION ...) in CMakeLists.txt: include/goro/version.hpp, the
# root vcpkg.json manifest and the vcpkg port's vcpkg.json; and that both
# manifests depend on boost-context. Run from scripts/packaging.sh:
#   cmake -P cmake/goroCheckManifests.cmake
cmake_minimum_required(VERSION 3.20)
get_filename_component(root "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
include("${CMAKE_CURRENT_LIST_DIR}/goroVersionCheck.cmake")

file(STRINGS "${root}/CMakeLists.txt" project_line REGEX "^project\\(goro VERSION ")
if(NOT project_line MATCHES "VERSION ([0-9]+\\.[0-9]+\\.[0-9]+)")
  message(FATAL_ERROR "goro: no `project(goro VERSION x.y.z` line in CMakeLists.txt")
endif()
set(version "${CMAKE_MATCH_1}")

goro_check_version_header("${root}/include/goro/version.hpp" "${version}")

foreach(manifest IN ITEMS vcpkg.json ports/goro/vcpkg.json)
  file(READ "${root}/${manifest}" json)
  string(JSON name ERROR_VARIABLE err GET "${json}" name)
  if(err)
    message(FATAL_ERROR "goro: ${manifest}: ${err}")
  endif()
  string(JSON manifest_version ERROR_VARIABLE err GET "${json}" version-semver)
  if(err OR NOT name STREQUAL "goro" OR NOT manifest_version STREQUAL version)
    message(FATAL_ERROR "goro: ${manifest} says name '${name}', version-semver "
                        "'${manifest_version}'; want 'goro', '${version}' as in CMakeLists.txt")
  endif()
  string(JSON ndeps LENGTH "${json}" dependencies)
  set(has_boost_context FALSE)
  math(EXPR last "${ndeps} - 1")
  foreach(i RANGE ${last})
    string(JSON dep GET "${json}" dependencies ${i})
    string(JSON dep_name ERROR_VARIABLE err GET "${dep}" name)  # object form
    if(err)
      set(dep_name "${dep}")                                     # string form
    endif()
    if(dep_name STREQUAL "boost-context")
      set(has_boost_context TRUE)
    endif()
  endforeach()
  if(NOT has_boost_context)
    message(FATAL_ERROR "goro: ${manifest} does not depend on boost-context")
  endif()
endforeach()
message(STATUS "goro ${version}: CMakeLists.txt, version.hpp and both vcpkg.json agree")
