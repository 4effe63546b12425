/* A program written against mxnet2_api.h only, walking the manual's life cycle against a real
 * server: errors before init, a failed init with no server, init counting (section 6.5), the
 * dongle queries, login and periodic re-login across several login timeouts (section 6.6),
 * logout counting (section 6.7a), a seat the server freed, release, reset, and bad arguments.
 *
 * Usage: walk <server port> <closed port> <LoginTimeOut in ms>
 *        walk ini   (server and port from mxnetapi.ini beside the program; one quick round)
 */
#include <string.h>

#include "check.h"

static void before_init(void) {
    CHECK_EQ(rLogIn_MatrixNet(USER_CODE, 1, 1), -116);
    CHECK_EQ(rLogOut_MatrixNet(USER_CODE, 1, 1), -116);
    CHECK_EQ(rRelease_MatrixAPI(), -116);
    CHECK_EQ(rDongle_Count(USB), -116);
    CHECK_EQ(rSetConfig_MatrixNet(1, NULL), -106);
    CHECK_EQ(rSetConfig_MatrixNet(0, "localhost"), -302);
}

#if defined(_WIN32)
static int set_ip(const char *ip) {
    wchar_t wide[64];
    size_t i = 0;
    for (; ip[i] && i < 63; i++) wide[i] = (wchar_t)ip[i];
    wide[i] = 0;
    CHECK(MxNet_SetIP(NULL) == NULL);
    return MxNet_SetIP(wide) == wide;
}
#else
static int set_ip(const char *ip) {
    char copy[64];
    strncpy(copy, ip, sizeof copy - 1);
    copy[sizeof copy - 1] = 0;
    CHECK(MxNet_SetIP(NULL) == NULL);
    return MxNet_SetIP(copy) == copy;
}
#endif

static void no_server(int closed_port) {
    CHECK(set_ip("127.0.0.1"));
    CHECK_EQ(MxNet_SetPort(closed_port), closed_port);
    CHECK_EQ(MxNet_SetPort(0), closed_port); /* refused: the port in effect */
    CHECK_EQ(MxNet_SetTimeOut(1000), 1000);
    CHECK_EQ(INIT(), -100);
    CHECK_EQ(rLogIn_MatrixNet(USER_CODE, 1, 1), -116); /* a failed init leaves no session */
}

static void dongle_queries(void) {
    _mxINT32 data[4] = {0, 0, 0, 0};
    char *names = (char *)"untouched";
    CHECK_EQ(rDongle_Count(USB), 1);
    CHECK_EQ(rDongle_Find(), USB);
    CHECK_EQ(rDongle_ReadSerNr(USER_CODE, 1, USB), SERIAL);
    CHECK_EQ(rDongle_ReadSerNr(USER_CODE + 1, 1, USB), -102); /* another customer's code */
    CHECK_EQ(rDongle_ReadSerNr(USER_CODE, 5, USB), -102);
    CHECK_EQ(rDongle_ReadSerNr(USER_CODE, -1, USB), -102);
    CHECK_EQ(rDongle_ReadData(USER_CODE, data, 3, 1, USB), 3);
    CHECK(data[0] == 5 && data[1] == 6 && data[2] == 7 && data[3] == 0);
    CHECK_EQ(rDongle_ReadDataEx(USER_CODE, data, 1, 4, 1, USB), 2); /* the memory ends */
    CHECK(data[0] == 6 && data[1] == 7);
    CHECK_EQ(rDongle_ReadData(USER_CODE, NULL, 3, 1, USB), -106);
    CHECK_EQ(rDongle_ReadData(USER_CODE, data, -1, 1, USB), -106);
    CHECK_EQ(rDongle_ReadDataEx(USER_CODE, data, -2, 1, 1, USB), -106);
    CHECK_EQ(rDongle_GetLoginCountEx(USER_CODE, 1, 1, USB, NULL), -106);
    CHECK_EQ(rDongle_GetLoginCountEx(USER_CODE, 1, 1, USB, &names), 0);
    CHECK(names != NULL && names[0] == 0);
    CHECK_EQ(rDongle_Version(1, USB), -302);
    CHECK_EQ(rDongle_GetDetectTime(USER_CODE, data, 1, USB), -302);
    CHECK(rGetVersionAPI() >= 0);
}

static void bad_logins(void) {
    CHECK_EQ(rLogIn_MatrixNet(USER_CODE, 99, 1), -31); /* an AppSlot without seats */
    CHECK_EQ(rLogIn_MatrixNet(USER_CODE, -1, 1), -31);
    CHECK_EQ(rLogIn_MatrixNet(USER_CODE, 1, -1), -102);
    CHECK_EQ(rLogIn_MatrixNet(USER_CODE, 1, 7), -102);
    CHECK_EQ(rLogIn_MatrixNet(USER_CODE + 1, 1, 1), -102);
    CHECK_EQ(rLogOut_MatrixNet(USER_CODE, 2, 1), -11); /* never logged in there */
}

/* Logs out until the server's seat count drops to zero; returns how many calls that took. */
static int logout_all(void) {
    int calls = 0;
    while (rDongle_GetLoginCount(USER_CODE, 1, 1, USB) > 0) {
        CHECK(rLogOut_MatrixNet(USER_CODE, 1, 1) >= 0);
        calls++;
        CHECK(calls < 1000);
    }
    return calls;
}

static void licences(unsigned login_timeout_ms) {
    int rounds = 12, i;
    char *names = NULL;
    CHECK_EQ(rLogIn_MatrixNet(USER_CODE, 1, 1), 1); /* takes one of 2 seats */
    CHECK_EQ(rLogIn_MatrixNet(USER_CODE, 1, 1), 1); /* refreshes it, counted */
    CHECK_EQ(rDongle_GetLoginCount(USER_CODE, 1, 1, USB), 1);
    CHECK_EQ(rDongle_GetLoginCountEx(USER_CODE, 1, 1, USB, &names), 1);
    CHECK(names != NULL && strlen(names) > 0 && strchr(names, '\t') == NULL);
    /* Section 6.6: only re-login, every LoginTimeOut/3, across four login timeouts. */
    for (i = 0; i < rounds; i++) {
        sleep_ms(login_timeout_ms / 3);
        CHECK_EQ(rLogIn_MatrixNet(USER_CODE, 1, 1), 1);
    }
    CHECK_EQ(rDongle_GetLoginCount(USER_CODE, 1, 1, USB), 1);
    /* Section 6.7a: 14 logins; 13 logouts only count, the 14th frees the seat. */
    CHECK_EQ(logout_all(), rounds + 2);
    CHECK_EQ(rLogOut_MatrixNet(USER_CODE, 1, 1), -11);

    /* A program that stops refreshing loses the seat; its next login is sent and says so. */
    CHECK_EQ(rLogIn_MatrixNet(USER_CODE, 1, 1), 1);
    sleep_ms(login_timeout_ms * 5 / 2);
    CHECK_EQ(rDongle_GetLoginCount(USER_CODE, 1, 1, USB), 0);
    CHECK_EQ(rLogIn_MatrixNet(USER_CODE, 1, 1), 1); /* the seat is taken again */
    CHECK_EQ(logout_all(), 2);
}

static void reset(void) {
    CHECK_EQ(INIT(), 1);
    CHECK_EQ(INIT(), 2);
    rReset_MatrixAPI();
    CHECK_EQ(rRelease_MatrixAPI(), -116);
    CHECK_EQ(INIT(), 1); /* a new session */
    CHECK_EQ(rDongle_Count(USB), 1);
    CHECK_EQ(rRelease_MatrixAPI(), 0);
}

static int from_ini(void) {
    CHECK_EQ(INIT(), 1);
    CHECK_EQ(rDongle_ReadSerNr(USER_CODE, 1, USB), SERIAL);
    CHECK_EQ(rLogIn_MatrixNet(USER_CODE, 1, 1), 1);
    CHECK_EQ(rLogOut_MatrixNet(USER_CODE, 1, 1), 2);
    CHECK_EQ(rRelease_MatrixAPI(), 0);
    puts("walk ini: ok");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "ini") == 0) return from_ini();
    if (argc != 4) {
        fprintf(stderr, "usage: walk <port> <closed port> <LoginTimeOut ms> | walk ini\n");
        return 2;
    }
    before_init();
    no_server(atoi(argv[2]));
    CHECK_EQ(MxNet_SetPort(atoi(argv[1])), atoi(argv[1]));
    CHECK_EQ(INIT(), 1);
    CHECK_EQ(INIT(), 2); /* section 6.5: counted, not sent */
    CHECK_EQ(rRelease_MatrixAPI(), 1);
    dongle_queries();
    bad_logins();
    licences((unsigned)atoi(argv[3]));
    CHECK_EQ(rRelease_MatrixAPI(), 0);
    CHECK_EQ(rRelease_MatrixAPI(), -116);
    reset();
    puts("walk: ok");
    return 0;
}
