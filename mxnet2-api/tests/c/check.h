/* What the C tests share: a CHECK that names the failed expectation and exits, a sleep, and
 * rInit_MatrixAPI called the same way on every platform (Windows declares an HINSTANCE). */
#ifndef MXNET2_TEST_CHECK_H
#define MXNET2_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "mxnet2_api.h"

#if defined(_WIN32)
#include <windows.h>
static inline void sleep_ms(unsigned ms) { Sleep(ms); }
#define INIT() rInit_MatrixAPI(NULL)
#else
#include <time.h>
static inline void sleep_ms(unsigned ms) {
    struct timespec t = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}
#define INIT() rInit_MatrixAPI()
#endif

/* Checks that `actual` (a call's result) equals `expected`; on failure prints both and exits. */
#define CHECK_EQ(actual, expected)                                                            \
    do {                                                                                      \
        long got_ = (long)(actual), want_ = (long)(expected);                                 \
        if (got_ != want_) {                                                                  \
            fprintf(stderr, "%s:%d: %s = %ld, expected %ld\n", __FILE__, __LINE__, #actual,   \
                    got_, want_);                                                             \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond);                \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

/* The simulated dongle the tests' server offers (mxnet2-api/tests/c_abi.rs). */
#define USER_CODE 1234
#define SERIAL 1234567890L
#define USB 85

#endif
