# tests/config.cmake: the table-driven configuration module (common/epw_config).
epw_unit_test(config LIBS epw_common)
