# tests/spool.cmake: the agent spool (agent/spool), with real files under the build directory.
epw_unit_test(spool LIBS epw_agent_core)
