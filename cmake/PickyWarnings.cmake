# Picky warnings for project code; generated code (protobuf-c) gets none of these.
set(EPW_WARNINGS
    -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
    -Wwrite-strings -Wformat=2 -Wundef -Wcast-align -Wpointer-arith -Wvla)
if(EPW_WERROR)
    list(APPEND EPW_WARNINGS -Werror)
endif()

# epw_target_warnings(target): apply the project's warning set to one target.
function(epw_target_warnings target)
    target_compile_options(${target} PRIVATE ${EPW_WARNINGS})
endfunction()
