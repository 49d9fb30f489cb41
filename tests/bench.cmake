# tests/bench.cmake: helpers for tests/bench/bench_agent.sh (not run by CTest).
if(NOT WIN32)
    add_executable(epw_holdconns ${CMAKE_CURRENT_SOURCE_DIR}/bench/holdconns.c)
    epw_target_warnings(epw_holdconns)
endif()
