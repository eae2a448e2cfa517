/*
 * Smoke test run by setup.sh under Wine after it has set up the prefix:
 * checks that bcryptprimitives.dll loads and that its ProcessPrng fills a
 * buffer, as Rust's Windows standard library needs at start-up.
 * Exit status 0 on success; 2 no DLL; 3 no ProcessPrng; 4 bad output.
 */
#include <windows.h>
#include <stdio.h>

typedef BOOL (WINAPI *process_prng_fn)(PBYTE, SIZE_T);

int main(void)
{
    HMODULE dll = LoadLibraryW(L"bcryptprimitives.dll");
    if (!dll) {
        fprintf(stderr, "smoke: LoadLibrary(bcryptprimitives.dll) failed: %lu\n", GetLastError());
        return 2;
    }
    process_prng_fn prng = (process_prng_fn)(void *)GetProcAddress(dll, "ProcessPrng");
    if (!prng) {
        fprintf(stderr, "smoke: no ProcessPrng export\n");
        return 3;
    }
    BYTE a[64] = {0}, b[64] = {0};
    if (!prng(a, sizeof a) || !prng(b, sizeof b) || memcmp(a, b, sizeof a) == 0) {
        fprintf(stderr, "smoke: ProcessPrng gave no random bytes\n");
        return 4;
    }
    printf("smoke: ProcessPrng ok\n");
    return 0;
}
