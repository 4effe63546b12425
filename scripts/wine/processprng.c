/*
 * Test-only stand-in for Windows' bcryptprimitives.dll under Wine 8 (issue #13).
 *
 * Rust's standard library (since 1.78) draws its random numbers from ProcessPrng, exported by
 * bcryptprimitives.dll since Windows 10; Wine 8's builtin bcryptprimitives lacks the export,
 * so no Rust program starts under it. This DLL exports only ProcessPrng, over RtlGenRandom
 * (advapi32's SystemFunction036), which Wine implements. scripts/wine/build-shim.sh builds it
 * from this source into the target directory; it is never shipped and never downloaded.
 */
#include <windows.h>

/* RtlGenRandom: declared here rather than through ntsecapi.h, whose declaration needs a macro
 * dance (SystemFunction036 under the name RtlGenRandom). */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* Windows' contract: fills data with cb random bytes and always returns TRUE. RtlGenRandom
 * takes a 32-bit length, so large requests are filled in pieces. */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T cb)
{
    while (cb > 0) {
        ULONG chunk = cb > 0x10000000 ? 0x10000000 : (ULONG)cb;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        cb -= chunk;
    }
    return TRUE;
}
