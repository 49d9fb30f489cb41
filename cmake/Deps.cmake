# Locate dependencies. Debian 12 packages on Linux; static libraries built from Debian source
# packages when cross-compiling for Windows (agent/windows/cross-build.sh sets EPW_DEPS_PREFIX).
find_package(PkgConfig REQUIRED)
if(EPW_DEPS_PREFIX)
    list(PREPEND CMAKE_FIND_ROOT_PATH ${EPW_DEPS_PREFIX})
    list(PREPEND CMAKE_PREFIX_PATH ${EPW_DEPS_PREFIX})
endif()

# epw_find_lib(NAME HEADER LIBNAMES...): imported target epw::NAME from a header and a library.
function(epw_find_lib name header)
    find_path(${name}_INCLUDE_DIR ${header} REQUIRED)
    find_library(${name}_LIBRARY NAMES ${ARGN} REQUIRED)
    add_library(epw::${name} UNKNOWN IMPORTED GLOBAL)
    set_target_properties(epw::${name} PROPERTIES
        IMPORTED_LOCATION "${${name}_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${${name}_INCLUDE_DIR}")
endfunction()

if(WIN32)
    epw_find_lib(uv uv.h uv_a uv)
    target_link_libraries(epw::uv INTERFACE iphlpapi ws2_32 psapi userenv user32 advapi32 dbghelp ole32)
else()
    pkg_check_modules(UV REQUIRED IMPORTED_TARGET libuv)
    add_library(epw::uv ALIAS PkgConfig::UV)
endif()

# mbedTLS 2.28 ships neither pkg-config nor a CMake package; link order matters.
epw_find_lib(mbedcrypto mbedtls/ssl.h mbedcrypto)
epw_find_lib(mbedx509 mbedtls/ssl.h mbedx509)
epw_find_lib(mbedtls mbedtls/ssl.h mbedtls)
target_link_libraries(epw::mbedtls INTERFACE epw::mbedx509)
target_link_libraries(epw::mbedx509 INTERFACE epw::mbedcrypto)
if(WIN32)
    target_link_libraries(epw::mbedcrypto INTERFACE bcrypt)
endif()

epw_find_lib(protobufc protobuf-c/protobuf-c.h protobuf-c)
epw_find_lib(cjson cjson/cJSON.h cjson)
if(WIN32)
    # Built static by agent/windows/cross-build.sh: no dllexport/dllimport decoration.
    set_target_properties(epw::cjson PROPERTIES INTERFACE_COMPILE_DEFINITIONS CJSON_HIDE_SYMBOLS)
endif()
epw_find_lib(inih ini.h inih)
find_program(PROTOC_C protoc-c REQUIRED)

if(EPW_BUILD_COLLECTOR)
    find_package(SQLite3 REQUIRED)
    find_package(CURL REQUIRED)
    pkg_check_modules(PQ REQUIRED IMPORTED_TARGET libpq)
    epw_find_lib(httpparser http_parser.h http_parser)
endif()

if(BUILD_TESTING)
    if(WIN32)
        epw_find_lib(cmocka cmocka.h cmocka-static cmocka)
    else()
        pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
        add_library(epw::cmocka ALIAS PkgConfig::CMOCKA)
    endif()
endif()
