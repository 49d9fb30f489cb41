# CLI tests for epwatch-agent: option parsing (unit) and the built program (integration).
epw_unit_test(agent_opts LIBS epw_agent_core)

set(_cli_check ${CMAKE_CURRENT_SOURCE_DIR}/integration/cli_check.cmake)
set(_cli_out ${CMAKE_CURRENT_BINARY_DIR}/cli)

# epw_cli_test(NAME ARGS a|b|c [RC n] [STDOUT s|s] [STDERR s|s] [JSON_PLATFORM p] [JSON_ARRAY 1]
#              [LOG file] [LOG_BLOCKS n])
# Runs epwatch-agent with ARGS ('|'-separated) through integration/cli_check.cmake.
function(epw_cli_test name)
    cmake_parse_arguments(C "" "ARGS;RC;STDOUT;STDERR;JSON_PLATFORM;JSON_ARRAY;LOG;LOG_BLOCKS;TIMEOUT"
                          "" ${ARGN})
    if(NOT DEFINED C_RC)
        set(C_RC 0)
    endif()
    if(NOT C_TIMEOUT)
        set(C_TIMEOUT 60)
    endif()
    add_test(NAME cli_${name}
             COMMAND ${CMAKE_COMMAND} -DAGENT=$<TARGET_FILE:epwatch-agent> "-DARGS=${C_ARGS}"
                     "-DEMULATOR=${CMAKE_CROSSCOMPILING_EMULATOR}"
                     -DRC=${C_RC} "-DSTDOUT=${C_STDOUT}" "-DSTDERR=${C_STDERR}"
                     -DJSON_PLATFORM=${C_JSON_PLATFORM} -DJSON_ARRAY=${C_JSON_ARRAY}
                     -DLOG=${C_LOG} -DLOG_BLOCKS=${C_LOG_BLOCKS} -P ${_cli_check})
    set_tests_properties(cli_${name} PROPERTIES TIMEOUT ${C_TIMEOUT} LABELS cli)
endfunction()

epw_cli_test(help ARGS --help
             STDOUT "Usage: epwatch-agent|--once|--json|--netstat|--netsh|--all-netns|--top|--no-pids|--log FILE|--interval|--log-max|--log-keep|--count|--quiet|--log-level|--help|--version|Examples:")
epw_cli_test(version ARGS --version STDOUT "epwatch-agent ${PROJECT_VERSION}")
epw_cli_test(bad_option ARGS --bogus RC 2 STDERR "unknown option '--bogus'|--help")
epw_cli_test(bad_interval ARGS --interval|5x RC 2 STDERR "--interval: invalid duration '5x'")
epw_cli_test(bad_log_max ARGS --log|x.log|--log-max|lots RC 2 STDERR "--log-max")
epw_cli_test(missing_value ARGS --top RC 2 STDERR "--top: missing value")
epw_cli_test(once_conflict ARGS --once|--count|2 RC 2 STDERR "--count")
epw_cli_test(netstat_missing_file ARGS --netstat|${_cli_out}/no-such-netstat.txt RC 1
             STDERR "no-such-netstat.txt")

if(EXISTS ${EPW_FIXTURES}/netstat_en.txt AND EXISTS ${EPW_FIXTURES}/netsh_en.txt)
    epw_cli_test(netstat_json
                 ARGS --once|--json|--netstat|${EPW_FIXTURES}/netstat_en.txt|--netsh|${EPW_FIXTURES}/netsh_en.txt
                 JSON_PLATFORM windows)
    epw_cli_test(netstat_table
                 ARGS --netstat|${EPW_FIXTURES}/netstat_en.txt|--netsh|${EPW_FIXTURES}/netsh_en.txt
                 STDOUT "Computer DateTime|#OfEPortsInUse|Pressure:|Ranges:|captured")
endif()

if(NOT WIN32)
    # The live Linux sampler.
    epw_cli_test(once_json ARGS --once|--json|--no-pids JSON_PLATFORM linux)
    epw_cli_test(once_table ARGS --once STDOUT "Computer DateTime|LocalAddress|Pressure:")
    epw_cli_test(all_netns_json ARGS --once|--json|--all-netns|--no-pids JSON_PLATFORM linux
                 JSON_ARRAY 1)
    epw_cli_test(log_count
                 ARGS --log|${_cli_out}/count/agent.log|--interval|200ms|--count|2|--quiet|--no-pids
                 LOG ${_cli_out}/count/agent.log LOG_BLOCKS 2)
    add_test(NAME cli_sigterm
             COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/cli_sigterm.sh
                     $<TARGET_FILE:epwatch-agent> ${_cli_out}/sigterm)
    set_tests_properties(cli_sigterm PROPERTIES TIMEOUT 60 LABELS cli)
endif()
