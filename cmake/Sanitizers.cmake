# EPW_SANITIZE=address,undefined | thread: instrument every target of the build.
if(EPW_SANITIZE)
    set(_san "-fsanitize=${EPW_SANITIZE}" -fno-omit-frame-pointer -g)
    if(EPW_SANITIZE MATCHES "undefined")
        list(APPEND _san -fno-sanitize-recover=undefined)
    endif()
    add_compile_options(${_san})
    add_link_options("-fsanitize=${EPW_SANITIZE}")
endif()
