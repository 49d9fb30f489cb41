/* winrange_win: the Windows dynamic and excluded port ranges, read from WMI and netsh. */
#ifndef WINRANGE_WIN_H
#define WINRANGE_WIN_H

#include <stddef.h>
#include <stdint.h>

#include "winsrc.h"

/*
 * Range sources for winsrc_ranges_resolve (ud unused, pass NULL). Both block (WMI: a COM call to
 * the WMI service, seconds at worst; netsh: one process per wanted range, 10 s timeout each),
 * so call them from the sampler's thread, never from an event loop.
 * - winrange_wmi: ROOT\StandardCimv2 MSFT_NetTCPSetting / MSFT_NetUDPSetting,
 *   DynamicPortRangeStartPort and DynamicPortRangeNumberOfPorts of the instance that has them
 *   (WMI keeps one per protocol, so both families get the same answer). Initialises COM on the
 *   calling thread for the call (multithreaded apartment) when it is not already initialised.
 * - winrange_netsh: `netsh int ipv4|ipv6 show dynamicport tcp|udp` parsed with
 *   capture_parse_netsh.
 */
void winrange_wmi(void *ud, const uint8_t want[WINSRC_NRANGES], winsrc_answer_t *ans);
void winrange_netsh(void *ud, const uint8_t want[WINSRC_NRANGES], winsrc_answer_t *ans);

/*
 * Runs `netsh int ipv4|ipv6 show excludedportrange protocol=tcp|udp` and calls cb for each
 * excluded range (first..last inclusive). Returns the number of ranges (0 is a valid answer), or
 * a negative code with a few words in why (no output, exit code, timeout). Blocking.
 */
int winrange_excluded(sockrow_proto_t proto, int family,
                      void (*cb)(void *ud, uint32_t first, uint32_t last), void *ud, char *why,
                      size_t whylen);

/*
 * Runs %SystemRoot%\System32\<exe> with the given arguments (no window, stdin from NUL, stdout and
 * stderr into one pipe), keeps at most cap bytes of its output in buf (the rest is read and
 * dropped so the child never blocks), and kills it after timeout_ms. *len receives the bytes kept
 * and *exit_code the exit status. 0, or a negative code with a few words in why.
 */
int winrange_run(const wchar_t *exe, const wchar_t *args, uint8_t *buf, size_t cap, size_t *len,
                 uint32_t *exit_code, uint32_t timeout_ms, char *why, size_t whylen);

#endif
