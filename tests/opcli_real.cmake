# tests/opcli_real.cmake: the operator CLI epwatch against a REAL epwatch-collector fed by a real
# epwatch-agent on 127.0.0.1 (certificates made at test time): every command, bearer tokens, and
# the unreachable, refused-certificate and untrusted-collector failures with their exit codes.
if(NOT WIN32 AND TARGET epwatch AND TARGET epwatch-collector AND TARGET epwatch-agent)
    add_test(NAME opcli_real
             COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/opcli_real.sh
                     $<TARGET_FILE:epwatch-agent> $<TARGET_FILE:epwatch-collector>
                     $<TARGET_FILE:epwatch> ${PROJECT_SOURCE_DIR}/certs/epwatch-certs)
    set_tests_properties(opcli_real PROPERTIES TIMEOUT 60 LABELS cli SKIP_RETURN_CODE 77)
endif()
