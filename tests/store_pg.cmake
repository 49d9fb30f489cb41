# The history store's PostgreSQL backend against a real, throwaway server: the fixture starts one
# (tests/support/pg_server.sh: initdb + pg_ctl as the postgres user, 127.0.0.1, a free port) in a
# temp dir and removes it afterwards. Without PostgreSQL the test is skipped, except with CI=true.
if(EPW_BUILD_COLLECTOR AND NOT WIN32)
    epw_unit_test(store_pg LIBS epw_store TIMEOUT 180
                  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/support/store_scenarios.c)
    if(TARGET test_store_pg)
        set(_pg_state ${CMAKE_CURRENT_BINARY_DIR}/pg-server)
        set(_pg_script ${CMAKE_CURRENT_SOURCE_DIR}/support/pg_server.sh)
        add_test(NAME store_pg_server_start COMMAND bash ${_pg_script} start ${_pg_state})
        add_test(NAME store_pg_server_stop COMMAND bash ${_pg_script} stop ${_pg_state})
        set_tests_properties(store_pg_server_start PROPERTIES FIXTURES_SETUP pg_server TIMEOUT 240)
        set_tests_properties(store_pg_server_stop PROPERTIES FIXTURES_CLEANUP pg_server TIMEOUT 120)
        set_tests_properties(store_pg PROPERTIES FIXTURES_REQUIRED pg_server
                             ENVIRONMENT "EPW_PG_STATE=${_pg_state}" SKIP_RETURN_CODE 77)
    endif()
endif()
