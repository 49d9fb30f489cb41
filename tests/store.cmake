# The collector's history store: real SQLite files in a temp dir, a real libuv loop.
if(EPW_BUILD_COLLECTOR)
    epw_unit_test(store LIBS epw_store SQLite::SQLite3 TIMEOUT 120
                  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/support/store_scenarios.c)
endif()
