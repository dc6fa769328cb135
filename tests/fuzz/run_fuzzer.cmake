# Runs one libFuzzer binary for a while on a scratch copy of its seed corpus: libFuzzer adds what it finds to
# the first corpus directory, and the checked-in seeds must stay as they are.
# Inputs: FUZZER (binary), CORPUS (seed folder), DICT (a libFuzzer dictionary), WORK (scratch folder), SECONDS.
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/corpus" "${WORK}/artifacts")
file(COPY "${CORPUS}/" DESTINATION "${WORK}/corpus")
execute_process(
  COMMAND "${FUZZER}" "${WORK}/corpus" -max_total_time=${SECONDS} -rss_limit_mb=2048 -malloc_limit_mb=512
          -timeout=10 "-dict=${DICT}" "-artifact_prefix=${WORK}/artifacts/" -print_final_stats=1
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${FUZZER} exited with ${rc}; the failing input is in ${WORK}/artifacts/")
endif()
