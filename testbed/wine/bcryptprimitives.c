/*
 * Stand-in for Windows' bcryptprimitives.dll, for running Rust test
 * executables under Wine 8.0 (Debian 12's wine package).
 *
 * Why this exists:
 *   Since Rust 1.78 the Windows standard library gets its random bytes
 *   (HashMap seeds, etc.) from ProcessPrng() in bcryptprimitives.dll, which
 *   it links to directly.  Wine 8.0 does not ship that DLL, so every Rust
 *   executable built for x86_64-pc-windows-gnu fails to load and Wine exits
 *   with status 53 before main() runs.  Newer Wine releases (9.x) provide
 *   the DLL themselves; there this stand-in is harmless and unused if Wine's
 *   own builtin is preferred.
 *
 * What it does:
 *   Exports exactly one function, ProcessPrng, with the documented signature
 *       BOOL WINAPI ProcessPrng(PBYTE pbData, SIZE_T cbData);
 *   implemented with RtlGenRandom (exported by advapi32 as SystemFunction036),
 *   which Wine has long implemented on top of the host's random source.
 *   Like the real one it always returns TRUE (the real ProcessPrng is
 *   documented never to fail); if RtlGenRandom fails we abort instead of
 *   returning predictable bytes.
 *
 * It is built with mingw by testbed/wine/setup.sh and copied into the Wine
 * prefix's drive_c/windows/system32.  It is test tooling only and is never
 * shipped.
 */
#include <windows.h>

/* RtlGenRandom's real export name; its length argument is a ULONG. */
BOOLEAN WINAPI SystemFunction036(PVOID RandomBuffer, ULONG RandomBufferLength);

BOOL WINAPI ProcessPrng(PBYTE pbData, SIZE_T cbData)
{
    while (cbData > 0) {
        ULONG chunk = cbData > 0x10000000u ? 0x10000000u : (ULONG)cbData;
        if (!SystemFunction036(pbData, chunk)) {
            /* Never hand back unrandom bytes. */
            ExitProcess(0xC0000001u);
        }
        pbData += chunk;
        cbData -= chunk;
    }
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE inst, DWORD reason, LPVOID reserved)
{
    (void)inst; (void)reason; (void)reserved;
    return TRUE;
}
