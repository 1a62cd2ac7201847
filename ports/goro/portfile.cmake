# vcpkg port of goro (header-only).
#
# Inside a goro checkout this is an overlay port that builds the checkout it
# sits in:
#   vcpkg install goro --overlay-ports=<goro>/ports
# Copied into a registry, it fetches the release tag instead: fill in
# GORO_REPO and the archive's SHA512 (set it to 0 once, vcpkg prints the
# right one) when publishing a release.
set(GORO_REPO "goro/goro")  # <owner>/<name> on GitHub

set(VCPKG_BUILD_TYPE release)  # header-only: one configuration is enough

get_filename_component(GORO_CHECKOUT "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
if(EXISTS "${GORO_CHECKOUT}/include/goro/version.hpp"
   AND EXISTS "${GORO_CHECKOUT}/CMakeLists.txt")
  set(SOURCE_PATH "${GORO_CHECKOUT}")
else()
  vcpkg_from_github(
    OUT_SOURCE_PATH SOURCE_PATH
    REPO "${GORO_REPO}"
    REF "v${VERSION}"
    SHA512 0
    HEAD_REF main
  )
endif()

vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    -DGORO_BUILD_TESTS=OFF
    -DGORO_BUILD_EXAMPLES=OFF
    -DGORO_BUILD_BENCHMARKS=OFF
    -DGORO_INSTALL=ON
    -DGORO_INSTALL_CMAKEDIR=share/${PORT}
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH share/${PORT})

# vcpkg accepts share/pkgconfig only for .pc files without Libs:, and goro.pc
# links Boost.Context, which vcpkg puts in its own lib/: move goro.pc to
# lib/pkgconfig and point the linker there.
file(MAKE_DIRECTORY "${CURRENT_PACKAGES_DIR}/lib/pkgconfig")
file(RENAME "${CURRENT_PACKAGES_DIR}/share/pkgconfig/goro.pc"
            "${CURRENT_PACKAGES_DIR}/lib/pkgconfig/goro.pc")
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/share/pkgconfig")
vcpkg_replace_string("${CURRENT_PACKAGES_DIR}/lib/pkgconfig/goro.pc"
                     "Libs: " "Libs: -L\${prefix}/lib ")
vcpkg_fixup_pkgconfig()

# goro installs its license under share/doc; vcpkg wants it as the copyright.
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/share/doc")
file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
