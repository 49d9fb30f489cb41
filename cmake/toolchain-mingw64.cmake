# Cross-compiling for 64-bit Windows with Debian's mingw-w64 GCC (win32 thread model) and running
# the results under Wine. Used by agent/windows/cross-build.sh for the dependencies and the project.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(_epw_mingw x86_64-w64-mingw32)
# The -win32 names: the unsuffixed ones follow update-alternatives and may point at the posix
# thread model, whose binaries need libwinpthread-1.dll at run time.
find_program(CMAKE_C_COMPILER NAMES ${_epw_mingw}-gcc-win32 ${_epw_mingw}-gcc REQUIRED)
find_program(CMAKE_RC_COMPILER NAMES ${_epw_mingw}-windres REQUIRED)
find_program(CMAKE_AR NAMES ${_epw_mingw}-gcc-ar-win32 ${_epw_mingw}-ar REQUIRED)
find_program(CMAKE_RANLIB NAMES ${_epw_mingw}-gcc-ranlib-win32 ${_epw_mingw}-ranlib REQUIRED)

# Headers and libraries from the mingw sysroot and the dependency prefix only; programs (protoc-c)
# from the host.
list(APPEND CMAKE_FIND_ROOT_PATH /usr/${_epw_mingw})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# One self-contained .exe: no libgcc/libssp DLLs next to it.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")

# CTest (and add_test COMMAND targets) run the test executables through Wine.
find_program(EPW_WINE NAMES wine wine64)
if(EPW_WINE)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${EPW_WINE})
endif()
