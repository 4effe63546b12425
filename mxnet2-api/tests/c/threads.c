/* Sixteen threads of one process share one session and one seat (sections 6.5 and 6.7a):
 * every rInit_MatrixAPI and rRelease_MatrixAPI result is a distinct count, and in every round
 * the server holds exactly one seat for the process while its threads are logged in and none
 * after they have all logged out.
 *
 * Usage: threads <server port>
 */
#include <pthread.h>

#include "check.h"

#define THREADS 16
#define ROUNDS 5
#define SLOT 2 /* 10 seats; the process must take exactly one */

static pthread_barrier_t barrier;
static int init_result[THREADS];
static int release_result[THREADS];

static void wait_all(void) {
    int r = pthread_barrier_wait(&barrier);
    CHECK(r == 0 || r == PTHREAD_BARRIER_SERIAL_THREAD);
}

static void *worker(void *arg) {
    int me = (int)(size_t)arg, round;
    init_result[me] = INIT();
    wait_all();
    for (round = 0; round < ROUNDS; round++) {
        CHECK(rLogIn_MatrixNet(USER_CODE, SLOT, 1) >= 0);
        wait_all();
        CHECK_EQ(rDongle_GetLoginCount(USER_CODE, SLOT, 1, USB), 1);
        wait_all();
        CHECK(rLogOut_MatrixNet(USER_CODE, SLOT, 1) >= 0);
        wait_all();
        CHECK_EQ(rDongle_GetLoginCount(USER_CODE, SLOT, 1, USB), 0);
        wait_all();
    }
    release_result[me] = rRelease_MatrixAPI();
    return NULL;
}

/* Checks that `values` holds each of first..first+THREADS-1 exactly once. */
static void check_distinct(const int *values, int first) {
    int seen[THREADS] = {0}, i;
    for (i = 0; i < THREADS; i++) {
        int slot = values[i] - first;
        CHECK(slot >= 0 && slot < THREADS);
        CHECK(!seen[slot]);
        seen[slot] = 1;
    }
}

int main(int argc, char **argv) {
    pthread_t threads[THREADS];
    char ip[] = "127.0.0.1";
    int i;
    if (argc != 2) {
        fprintf(stderr, "usage: threads <port>\n");
        return 2;
    }
#if defined(_WIN32)
    {
        wchar_t wide[] = L"127.0.0.1";
        CHECK(MxNet_SetIP(wide) == wide);
        (void)ip;
    }
#else
    CHECK(MxNet_SetIP(ip) == ip);
#endif
    CHECK_EQ(MxNet_SetPort(atoi(argv[1])), atoi(argv[1]));
    CHECK_EQ(INIT(), 1); /* the main thread's: the threads count 2..17 */
    CHECK(pthread_barrier_init(&barrier, NULL, THREADS) == 0);
    for (i = 0; i < THREADS; i++)
        CHECK(pthread_create(&threads[i], NULL, worker, (void *)(size_t)i) == 0);
    for (i = 0; i < THREADS; i++) CHECK(pthread_join(threads[i], NULL) == 0);
    check_distinct(init_result, 2);
    check_distinct(release_result, 1);
    CHECK_EQ(rDongle_GetLoginCount(USER_CODE, SLOT, 1, USB), 0);
    CHECK_EQ(rRelease_MatrixAPI(), 0);
    CHECK_EQ(rRelease_MatrixAPI(), -116);
    puts("threads: ok");
    return 0;
}
