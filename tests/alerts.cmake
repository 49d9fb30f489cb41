# tests/alerts.cmake: the collector's alert bookkeeping and configuration (collector/alerts.c,
# collector_conf.c) on a real loop and SQLite store, and the end-to-end exhaustion test: a real
# agent, collector, webhook receiver and operator CLI in a network namespace the test creates.
if(EPW_BUILD_COLLECTOR AND NOT WIN32 AND TARGET epw_collector_core)
    epw_unit_test(alerts LIBS epw_collector_core
                  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/support/epw_testsnap.c TIMEOUT 60)
endif()

if(EPW_BUILD_COLLECTOR AND NOT WIN32 AND TARGET epwatch-collector AND TARGET epwatch-agent
   AND TARGET epwatch)
    find_program(EPW_PYTHON3 python3)
    if(EPW_PYTHON3)
        add_test(NAME e2e_exhaustion
                 COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/e2e_exhaustion.sh
                         $<TARGET_FILE:epwatch-agent> $<TARGET_FILE:epwatch-collector>
                         $<TARGET_FILE:epwatch> ${PROJECT_SOURCE_DIR}/certs/epwatch-certs
                         ${CMAKE_CURRENT_SOURCE_DIR}/integration/e2e_helper.py)
        set_tests_properties(e2e_exhaustion PROPERTIES TIMEOUT 120 LABELS "e2e;netns"
                             SKIP_RETURN_CODE 77)
    endif()
endif()
