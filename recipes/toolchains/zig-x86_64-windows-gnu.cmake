# Cross-compile Windows x86_64 binaries on Linux with zig's clang + bundled mingw-w64 headers.
# Debian's mingw-w64 headers are too old for ggml-cpu (THREAD_POWER_THROTTLING_STATE); zig's are not.
# The wrappers in zig/ exec "$LOCARA_ZIG" (cc|c++|ar|ranlib|rc): the Windows platform's plan_env
# hook sets it from the `ziglang` wheel (locara_build/build/toolchains/zig.py), so `locara-build plan`
# shows it. zig links its own libc++ statically: the .exe needs no C++ runtime DLL.
# docs/backends.md, "Windows".
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(_zig_dir "${CMAKE_CURRENT_LIST_DIR}/zig")
set(CMAKE_C_COMPILER   "${_zig_dir}/cc")
set(CMAKE_CXX_COMPILER "${_zig_dir}/c++")
set(CMAKE_AR           "${_zig_dir}/ar" CACHE FILEPATH "" FORCE)
set(CMAKE_RANLIB       "${_zig_dir}/ranlib" CACHE FILEPATH "" FORCE)
set(CMAKE_RC_COMPILER  "${_zig_dir}/rc" CACHE FILEPATH "" FORCE)

# Never pick up the build host's (Linux) libraries, headers or CMake packages (OpenSSL, CURL...):
# there is no target sysroot, so every find_* for the target finds nothing unless it is given.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
