# tests/collector.cmake: the collector's ingest server (in-process, real TLS and SQLite) and the
# epwatch-collector process test (kill -9 mid-stream, restart, nothing acknowledged lost).
if(EPW_BUILD_COLLECTOR AND NOT WIN32)
    set(_epw_coll_support
        ${CMAKE_CURRENT_SOURCE_DIR}/support/epw_testcerts.c
        ${CMAKE_CURRENT_SOURCE_DIR}/integration/fake_agent.c)
    epw_unit_test(ingest LIBS epw_collector_core SOURCES ${_epw_coll_support} TIMEOUT 120)
    if(TARGET test_ingest)
        target_include_directories(test_ingest PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support
                                   ${CMAKE_CURRENT_SOURCE_DIR}/integration)
        target_compile_definitions(test_ingest PRIVATE
            EPW_CERTS_SCRIPT="${PROJECT_SOURCE_DIR}/certs/epwatch-certs")
    endif()
endif()

# Process level: the real binary, kill -9 mid-stream, restart, sqlite3 checks the database.
if(EPW_BUILD_COLLECTOR AND NOT WIN32 AND TARGET epwatch-collector)
    find_program(EPW_SQLITE3_CLI sqlite3)
    if(EPW_SQLITE3_CLI)
        add_executable(collector_kill9 ${CMAKE_CURRENT_SOURCE_DIR}/integration/collector_kill9.c
                                       ${_epw_coll_support})
        target_link_libraries(collector_kill9 PRIVATE epw_net)
        target_include_directories(collector_kill9 PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support
                                   ${CMAKE_CURRENT_SOURCE_DIR}/integration)
        target_compile_definitions(collector_kill9 PRIVATE
            EPW_CERTS_SCRIPT="${PROJECT_SOURCE_DIR}/certs/epwatch-certs"
            EPW_COLLECTOR_EXE="$<TARGET_FILE:epwatch-collector>")
        epw_target_warnings(collector_kill9)
        add_dependencies(collector_kill9 epwatch-collector)
        add_test(NAME collector_kill9 COMMAND collector_kill9)
        set_tests_properties(collector_kill9 PROPERTIES TIMEOUT 120 LABELS integration)
    endif()
endif()
