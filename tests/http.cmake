# tests/http.cmake: the operator API's HTTP layer (collector/http_*.c) and the Prometheus writer.
if(EPW_BUILD_COLLECTOR)
    epw_unit_test(http LIBS epw_api)
    epw_unit_test(prom LIBS epw_api)
    # The writer's sample exposition must pass promtool. cmake/install-deps.sh --test installs
    # it (Debian package prometheus); a missing promtool fails the test instead of skipping it.
    if(TARGET test_prom)
        add_test(NAME prom_promtool
                 COMMAND sh -c "command -v promtool >/dev/null || { echo 'promtool not found: \
install the Debian package prometheus (cmake/install-deps.sh --test)' >&2; exit 1; }; \
\"$1\" --emit > prom_sample.txt && promtool check metrics < prom_sample.txt"
                         sh $<TARGET_FILE:test_prom>
                 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
        set_tests_properties(prom_promtool PROPERTIES TIMEOUT 60)
    endif()
endif()
