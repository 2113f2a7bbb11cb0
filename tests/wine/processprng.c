/*
 * bcryptprimitives.dll for Wine 8.0, which lacks ProcessPrng: Rust's std
 * imports it for its random numbers (HashMap seeds), so a Rust program for
 * x86_64-pc-windows-gnu does not even start without it. Placed next to the
 * test executable, this DLL is loaded instead of Wine's own. Never ship it
 * to a real Windows machine: Windows has the genuine one.
 */
#include <windows.h>

/* RtlGenRandom, exported by advapi32.dll under this name. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
