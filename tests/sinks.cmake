# tests/sinks.cmake: the collector's alert sinks on a real loop (loopback webhook receiver,
# /bin/sh children, syslog exercised).
if(EPW_BUILD_COLLECTOR AND NOT WIN32 AND TARGET epw_sinks)
    epw_unit_test(sinks LIBS epw_sinks TIMEOUT 60)
endif()
