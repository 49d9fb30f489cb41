/* epw_attr: compiler attributes shared by every module. */
#ifndef EPW_ATTR_H
#define EPW_ATTR_H

/*
 * EPW_PRINTF(fmt, first): printf-style format checking. MinGW GCC reads plain "printf" as the
 * MSVCRT dialect (no %zu, %lld), although __USE_MINGW_ANSI_STDIO gives a C99 printf at run time;
 * "gnu_printf" checks against what actually runs.
 */
#if defined(__MINGW32__)
#define EPW_PRINTF(fmt, first) __attribute__((format(gnu_printf, fmt, first)))
#elif defined(__GNUC__)
#define EPW_PRINTF(fmt, first) __attribute__((format(printf, fmt, first)))
#else
#define EPW_PRINTF(fmt, first)
#endif

#endif
