# tests/api.cmake: the collector's operator API server (collector/api.c) over real TLS on
# 127.0.0.1 with a real SQLite store, and epw_conn's raw (unframed) mode. The /metrics check runs
# promtool (Debian package prometheus): a missing promtool fails the test instead of skipping it.
if(EPW_BUILD_COLLECTOR AND NOT WIN32)
    epw_unit_test(api LIBS epw_api_server CURL::libcurl
                  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/support/epw_testcerts.c
                          ${CMAKE_CURRENT_SOURCE_DIR}/support/epw_testsnap.c TIMEOUT 120)
    if(TARGET test_api)
        target_include_directories(test_api PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support)
        target_compile_definitions(test_api PRIVATE
            EPW_CERTS_SCRIPT="${PROJECT_SOURCE_DIR}/certs/epwatch-certs")
    endif()
endif()
