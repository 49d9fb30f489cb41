# tests/fleet.cmake: fleet-scale benchmarks (issue 6): the fleet simulator, the bare SQLite baseline,
# the query benchmark, and the short soak test (CTest label `soak`; the full benchmarks run from
# tests/bench/bench_collector.sh, not from CTest).
if(EPW_BUILD_COLLECTOR AND NOT WIN32 AND TARGET epwatch-collector)
    set(_fleet_dir ${CMAKE_CURRENT_SOURCE_DIR}/bench)
    add_library(epw_fleet_support STATIC ${_fleet_dir}/fleet_snap.c ${_fleet_dir}/fleet_hist.c)
    target_include_directories(epw_fleet_support PUBLIC ${_fleet_dir})
    target_link_libraries(epw_fleet_support PUBLIC epw_common m)
    epw_target_warnings(epw_fleet_support)

    # The collector's schema for the benchmarks that write raw SQL (fleet_schema.h).
    add_library(epw_fleet_store STATIC ${_fleet_dir}/fleet_schema.c)
    target_include_directories(epw_fleet_store PUBLIC ${_fleet_dir})
    target_link_libraries(epw_fleet_store PUBLIC epw_store epw_common)
    epw_target_warnings(epw_fleet_store)

    add_executable(epwatch-fleetsim ${_fleet_dir}/fleetsim.c)
    target_link_libraries(epwatch-fleetsim PRIVATE epw_fleet_support epw_net epw_common)
    epw_target_warnings(epwatch-fleetsim)

    # The bare loop links SQLite itself on purpose: it is the physical limit the store is measured
    # against (store.h keeps SQLite out of everything else).
    add_executable(bench_sqlite_baseline ${_fleet_dir}/bench_sqlite_baseline.c)
    target_link_libraries(bench_sqlite_baseline PRIVATE epw_fleet_support epw_fleet_store epw_store
                          SQLite::SQLite3)
    epw_target_warnings(bench_sqlite_baseline)

    add_executable(bench_queries ${_fleet_dir}/bench_queries.c)
    target_link_libraries(bench_queries PRIVATE epw_fleet_support epw_fleet_store epw_store
                          SQLite::SQLite3)
    epw_target_warnings(bench_queries)

    find_program(EPW_SQLITE3_CLI sqlite3)
    if(EPW_SQLITE3_CLI)
        add_test(NAME soak_short
                 COMMAND ${_fleet_dir}/soak.sh --short --build ${PROJECT_BINARY_DIR})
        set_tests_properties(soak_short PROPERTIES TIMEOUT 900 LABELS soak RUN_SERIAL TRUE)
    endif()
endif()
