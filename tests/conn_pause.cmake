# tests/conn_pause.cmake: epw_conn receive-side flow control (pause/resume with buffered data,
# one connection resuming another from inside its delivery) over real TLS on 127.0.0.1.
if(NOT WIN32)
    epw_unit_test(conn_pause LIBS epw_net SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/support/epw_testcerts.c
                  TIMEOUT 60)
    if(TARGET test_conn_pause)
        target_include_directories(test_conn_pause PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support)
        target_compile_definitions(test_conn_pause PRIVATE
            EPW_CERTS_SCRIPT="${PROJECT_SOURCE_DIR}/certs/epwatch-certs")
    endif()
endif()
