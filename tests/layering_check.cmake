# Fails when a file under services/ includes a tensor or ops header: services knows no tensor; a route that seems
# to need one is missing a stage function. Run as: cmake -DMM_SOURCE_DIR=<repo> -P layering_check.cmake
if(NOT MM_SOURCE_DIR)
  message(FATAL_ERROR "layering_check: pass -DMM_SOURCE_DIR=<repo root>")
endif()

file(GLOB_RECURSE files "${MM_SOURCE_DIR}/services/*.h" "${MM_SOURCE_DIR}/services/*.hpp"
                        "${MM_SOURCE_DIR}/services/*.cpp")
if(NOT files)
  message(FATAL_ERROR "layering_check: no sources under ${MM_SOURCE_DIR}/services")
endif()

set(violations "")
foreach(f IN LISTS files)
  file(STRINGS "${f}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]common/(tensor|ops)[^\">]*[\">]")
  foreach(line IN LISTS lines)
    file(RELATIVE_PATH rel "${MM_SOURCE_DIR}" "${f}")
    string(STRIP "${line}" line)
    list(APPEND violations "  ${rel}: ${line}")
  endforeach()
endforeach()

if(violations)
  list(JOIN violations "\n" report)
  message(FATAL_ERROR "layering_check: services/ must not include tensor or ops headers:\n${report}")
endif()
list(LENGTH files n)
message(STATUS "layering_check: ${n} services files, no tensor or ops includes")
