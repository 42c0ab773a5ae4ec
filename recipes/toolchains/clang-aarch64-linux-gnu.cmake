# Linux arm64 (aarch64) with clang: cross-built on an x86-64 host, native on an arm64 one.
# Why clang and not Debian's gcc-aarch64-linux-gnu or zig: gcc 12 rejects -march=armv9.2-a+sme
# (upstream's SME CPU variants), zig links a private libc++ into every .so; see
# locara_build/build/toolchains/arm64.py and docs/backends.md "Linux arm64".
#
# The platform's plan_env hook sets (and `locara-build plan` shows):
#   LOCARA_CLANG / LOCARA_CLANGXX   clang >= 15 (Debian 12: clang-16)
#   LOCARA_AARCH64_SYSROOT          cross builds only: Debian bookworm's arm64 glibc, libstdc++,
#                                   OpenSSL unpacked with dpkg-deb -x (provisioned by `build`)
if(DEFINED ENV{LOCARA_CLANG})
  set(CMAKE_C_COMPILER "$ENV{LOCARA_CLANG}")
else()
  set(CMAKE_C_COMPILER clang)
endif()
if(DEFINED ENV{LOCARA_CLANGXX})
  set(CMAKE_CXX_COMPILER "$ENV{LOCARA_CLANGXX}")
else()
  set(CMAKE_CXX_COMPILER clang++)
endif()

if(NOT CMAKE_HOST_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
  if(NOT DEFINED ENV{LOCARA_AARCH64_SYSROOT})
    message(FATAL_ERROR "cross-building for aarch64 needs LOCARA_AARCH64_SYSROOT (run through locara-build, which provisions it)")
  endif()
  set(CMAKE_SYSTEM_NAME Linux)
  set(CMAKE_SYSTEM_PROCESSOR aarch64)
  set(CMAKE_C_COMPILER_TARGET aarch64-linux-gnu)
  set(CMAKE_CXX_COMPILER_TARGET aarch64-linux-gnu)
  set(CMAKE_SYSROOT "$ENV{LOCARA_AARCH64_SYSROOT}")
  set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
  # binutils-aarch64-linux-gnu's ld, ar, ranlib, strip (clang finds aarch64-linux-gnu-ld itself)
  set(CMAKE_AR aarch64-linux-gnu-ar CACHE FILEPATH "" FORCE)
  set(CMAKE_RANLIB aarch64-linux-gnu-ranlib CACHE FILEPATH "" FORCE)
  set(CMAKE_STRIP aarch64-linux-gnu-strip CACHE FILEPATH "" FORCE)
  # only the sysroot's libraries, headers and CMake packages (OpenSSL) for the target
  set(CMAKE_FIND_ROOT_PATH "$ENV{LOCARA_AARCH64_SYSROOT}")
  set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
  set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
  set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
  set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
endif()
