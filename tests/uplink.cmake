# tests/uplink.cmake: the agent's uplink (unit) and agent -> collector streaming end to end.
if(NOT WIN32)
    epw_unit_test(uplink LIBS epw_agent_core
                  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/support/epw_testcerts.c TIMEOUT 60)
    if(TARGET test_uplink)
        target_include_directories(test_uplink PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support)
        target_compile_definitions(test_uplink PRIVATE
            EPW_CERTS_SCRIPT="${PROJECT_SOURCE_DIR}/certs/epwatch-certs")
    endif()
else()
    epw_unit_test(uplink LIBS epw_agent_core)
endif()

# End to end: real epwatch-collector and epwatch-agent processes on 127.0.0.1 (Linux: uses ss).
if(NOT WIN32 AND TARGET epwatch-collector AND TARGET epwatch-agent)
    foreach(_s basic kill9 restart outage overflow)
        add_test(NAME stream_${_s}
                 COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/stream_test.sh ${_s}
                         $<TARGET_FILE:epwatch-agent> $<TARGET_FILE:epwatch-collector>
                         ${PROJECT_SOURCE_DIR}/certs/epwatch-certs)
        set_tests_properties(stream_${_s} PROPERTIES TIMEOUT 120 LABELS stream
                             SKIP_RETURN_CODE 77)
    endforeach()
endif()
