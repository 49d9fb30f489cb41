# tests/sampler_common.cmake: agent/sampler_common (bookkeeping shared by the platform samplers).
epw_unit_test(sampler_common LIBS epw_agent_core)
