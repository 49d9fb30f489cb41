# Picky warnings for project code; generated code (protobuf-c) gets none of these.
set(EPW_WARNINGS
    -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
    -Wwrite-strings -Wformat=2 -Wundef -Wcast-align -Wpointer-arith -Wvla)
if(MINGW)
    # To mingw GCC, format(printf) means the MSVCRT dialect (no %zu, %lld), although
    # __USE_MINGW_ANSI_STDIO gives a C99 printf at run time. The Linux builds check the formats.
    list(APPEND EPW_WARNINGS -Wno-format)
endif()
if(EPW_WERROR)
    list(APPEND EPW_WARNINGS -Werror)
endif()

# epw_target_warnings(target): apply the project's warning set to one target.
function(epw_target_warnings target)
    target_compile_options(${target} PRIVATE ${EPW_WARNINGS})
endfunction()
