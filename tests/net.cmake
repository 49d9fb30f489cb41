# tests/net.cmake: framing, TLS engine and libuv connection layer (library epw_net).
epw_unit_test(frame LIBS epw_net)

if(NOT WIN32)
    # These generate certificates at test time with certs/epwatch-certs (bash + openssl).
    set(_epw_certs_support ${CMAKE_CURRENT_SOURCE_DIR}/support/epw_testcerts.c)
    epw_unit_test(tls LIBS epw_net SOURCES ${_epw_certs_support})
    epw_unit_test(conn LIBS epw_net SOURCES ${_epw_certs_support} TIMEOUT 60)
    foreach(_t tls conn)
        if(TARGET test_${_t})
            target_include_directories(test_${_t} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support)
            target_compile_definitions(test_${_t} PRIVATE
                EPW_CERTS_SCRIPT="${PROJECT_SOURCE_DIR}/certs/epwatch-certs")
        endif()
    endforeach()
endif()
