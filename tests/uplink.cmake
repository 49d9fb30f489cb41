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

# Port starvation end to end, in a network namespace the test creates (Linux, root): the agent
# marks what it sampled while no ephemeral port was free, and delivers it once ports are back.
if(CMAKE_SYSTEM_NAME STREQUAL "Linux" AND TARGET epwatch-collector AND TARGET epwatch-agent)
    add_executable(port_hog ${CMAKE_CURRENT_SOURCE_DIR}/integration/port_hog.c)
    epw_target_warnings(port_hog)
    foreach(_s starved starved_bind)
        string(REPLACE "starved" "" _mode ${_s}) # "" or "_bind"
        string(REPLACE "_" "" _mode "${_mode}")
        add_test(NAME stream_${_s}
                 COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/starve_test.sh
                         $<TARGET_FILE:epwatch-agent> $<TARGET_FILE:epwatch-collector>
                         ${PROJECT_SOURCE_DIR}/certs/epwatch-certs $<TARGET_FILE:port_hog> ${_mode})
        set_tests_properties(stream_${_s} PROPERTIES TIMEOUT 45 LABELS "stream;netns"
                             SKIP_RETURN_CODE 77)
    endforeach()
endif()
