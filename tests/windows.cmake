# tests/windows.cmake: tests of the Windows agent, run under Wine by agent/windows/cross-build.sh.
if(WIN32)
    epw_unit_test(sampler_win LIBS epw_agent_platform)

    # The agent sees Linux loopback sockets held by a host-side helper (Wine 8.0 reads /proc/net).
    find_program(EPW_PYTHON3 python3)
    if(EPW_PYTHON3 AND CMAKE_CROSSCOMPILING_EMULATOR)
        add_test(NAME wine_sockets
                 COMMAND ${EPW_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/integration/wine_sockets.py
                         ${CMAKE_CROSSCOMPILING_EMULATOR} $<TARGET_FILE:epwatch-agent> --once --json)
        set_tests_properties(wine_sockets PROPERTIES TIMEOUT 120 LABELS wine)
    endif()
endif()
