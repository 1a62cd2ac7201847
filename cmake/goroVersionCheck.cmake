# Checks that include/goro/version.hpp agrees with project(goro VERSION ...).
#
# version.hpp is a checked-in header, so it is found the same way whether goro
# is installed, added with add_subdirectory/FetchContent, or used through
# pkg-config. This check keeps it from drifting from the CMake version: a
# version bump must edit both, and configuring fails until it does.
function(goro_check_version_header header expected)
  if(NOT EXISTS "${header}")
    message(FATAL_ERROR "goro: ${header} is missing")
  endif()
  file(STRINGS "${header}" lines
       REGEX "^#define GORO_VERSION_(MAJOR|MINOR|PATCH|STRING) ")
  set(found_major "")
  set(found_minor "")
  set(found_patch "")
  set(found_string "")
  foreach(line IN LISTS lines)
    if(line MATCHES "^#define GORO_VERSION_MAJOR ([0-9]+)$")
      set(found_major "${CMAKE_MATCH_1}")
    elseif(line MATCHES "^#define GORO_VERSION_MINOR ([0-9]+)$")
      set(found_minor "${CMAKE_MATCH_1}")
    elseif(line MATCHES "^#define GORO_VERSION_PATCH ([0-9]+)$")
      set(found_patch "${CMAKE_MATCH_1}")
    elseif(line MATCHES "^#define GORO_VERSION_STRING \"([^\"]*)\"$")
      set(found_string "${CMAKE_MATCH_1}")
    endif()
  endforeach()
  set(found "${found_major}.${found_minor}.${found_patch}")
  if(NOT found STREQUAL expected OR NOT found_string STREQUAL expected)
    message(FATAL_ERROR
      "goro: include/goro/version.hpp says ${found} (GORO_VERSION_STRING "
      "\"${found_string}\") but CMakeLists.txt says project(goro VERSION "
      "${expected}). Bump both together.")
  endif()
endfunction()
