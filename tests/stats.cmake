# tests/stats.cmake: common/epw_stats (the least-squares line shared by the collector's rules and API).
epw_unit_test(stats LIBS epw_common)
