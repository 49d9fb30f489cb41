# The operator CLI epwatch: pure rendering (unit) and the built program against a live HTTPS
# server (integration; a canned test server until the collector's API lands, or a real collector).
if(NOT TARGET epwatch)
    return()
endif()

epw_unit_test(cli_render LIBS epw_cli epw_common
              SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/support/epw_testsnap.c)

find_program(EPW_PYTHON3 python3)
find_program(EPW_OPENSSL openssl)
if(EPW_PYTHON3 AND EPW_OPENSSL AND NOT WIN32)
    add_test(NAME opcli_live
             COMMAND ${EPW_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/integration/opcli_test.py
                     --epwatch $<TARGET_FILE:epwatch>
                     --certs-tool ${PROJECT_SOURCE_DIR}/certs/epwatch-certs
                     --workdir ${CMAKE_CURRENT_BINARY_DIR}/opcli)
    set_tests_properties(opcli_live PROPERTIES TIMEOUT 120 LABELS cli)
endif()
