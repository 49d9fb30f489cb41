# tests/windows.cmake: tests of the Windows agent, run under Wine by agent/windows/cross-build.sh.

# The Windows sampler's pure parts (row conversion, names, range fallback, event counting) on
# injected tables and fake sources: portable, so they run on Linux as well as under Wine.
epw_unit_test(winsrc LIBS epw_agent_core)

if(WIN32)
    epw_unit_test(sampler_win LIBS epw_agent_platform)

    # The agent sees Linux loopback sockets held by a host-side helper (Wine 8.0 reads /proc/net).
    find_program(EPW_PYTHON3 python3)
    if(EPW_PYTHON3 AND CMAKE_CROSSCOMPILING_EMULATOR)
        add_test(NAME wine_sockets
                 COMMAND ${EPW_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/integration/wine_sockets.py
                         ${CMAKE_CROSSCOMPILING_EMULATOR} $<TARGET_FILE:epwatch-agent> --json --count 1 --interval 100ms)
        # Continuous mode, as the service runs: it subscribes to the event log (unavailable under
        # Wine, which the snapshot must say); --once never takes events from the service.
        set_tests_properties(wine_sockets PROPERTIES TIMEOUT 120 LABELS wine)
        add_test(NAME wine_sockets_once
                 COMMAND ${EPW_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/integration/wine_sockets.py
                         ${CMAKE_CROSSCOMPILING_EMULATOR} $<TARGET_FILE:epwatch-agent> --once --json)
        set_tests_properties(wine_sockets_once PROPERTIES TIMEOUT 120 LABELS wine)
    endif()
endif()

# The service, the MSI and Group Policy (agent/service_win.c, agent/policy_win.c, agent/windows/).
if(WIN32 AND CMAKE_CROSSCOMPILING_EMULATOR)
    find_program(EPW_PYTHON3 python3)
    if(EPW_PYTHON3)
        # Templates well-formed and in step with the agent; policy values in effect (reg add).
        add_test(NAME win_policy
                 COMMAND ${EPW_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/integration/win_policy.py
                         ${CMAKE_CROSSCOMPILING_EMULATOR} $<TARGET_FILE:epwatch-agent>
                         ${PROJECT_SOURCE_DIR}/agent/windows/epwatch.admx
                         ${PROJECT_SOURCE_DIR}/agent/windows/en-US/epwatch.adml)
        # It writes HKLM\Software\Policies\epwatch\Agent in the shared prefix: no agent run there
        # at the same time.
        set_tests_properties(win_policy PROPERTIES TIMEOUT 120 LABELS wine
                             RESOURCE_LOCK epw_wine_policy_key)
        if(TEST wine_sockets)
            set_tests_properties(wine_sockets wine_sockets_once PROPERTIES
                                 RESOURCE_LOCK epw_wine_policy_key)
        endif()
    endif()
    # The MSI end to end in its own fresh prefix, streaming to the Linux collector. That comes
    # from the Linux build (tests/run-all.sh builds build-ci-release first); without one the
    # script builds it once into BUILD_DIR/linux-collector.
    set(EPW_LINUX_COLLECTOR "" CACHE FILEPATH "Linux epwatch-collector for the Wine MSI test")
    set(_epw_coll ${EPW_LINUX_COLLECTOR})
    if(NOT _epw_coll AND EXISTS ${PROJECT_SOURCE_DIR}/build-ci-release/collector/epwatch-collector)
        set(_epw_coll ${PROJECT_SOURCE_DIR}/build-ci-release/collector/epwatch-collector)
    endif()
    add_test(NAME win_msi_service
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/win_msi_service.sh
                     ${PROJECT_BINARY_DIR} "${_epw_coll}" ${PROJECT_SOURCE_DIR}/certs/epwatch-certs)
    set_tests_properties(win_msi_service PROPERTIES TIMEOUT 600 LABELS wine SKIP_RETURN_CODE 77)
endif()
