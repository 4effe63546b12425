/*
 * mxnet2_api.h: the MxNet2 remote API as exported by dongle-relay's client library
 * (mxnet2_api.dll on Windows, libmxnet2_api.so / libmxnet2_api.a elsewhere).
 *
 * The functions, argument types and calling convention are those of the MxNet2 remote API
 * manual (sections 6.5, 6.6 and 7.3) and of the vendor's published headers (RiBiG's
 * mxnet2api.h, ribig-inc/mxnet2-api-sample on GitHub; TDi's MXAPI.H for the local Matrix API
 * the r-functions mirror). Return values >= 0 are results; negative values are error codes
 * (docs/error-codes.md). docs/client-library.md says which functions the server answers.
 *
 * Types: _mxINT16 is a 16-bit short and _mxINT32 a 32-bit integer (long where long has 32
 * bits, as on Windows; int otherwise), as the vendor's mxtypes.h defines them.
 */
#ifndef MXNET2_API_H
#define MXNET2_API_H

#include <limits.h>
#include <stddef.h>

/* The vendor's mxtypes.h uses the same guard; whichever comes first defines the types. */
#ifndef _MATRIXAPI_DATA_TYPES
#define _MATRIXAPI_DATA_TYPES
#if ULONG_MAX == 0xffffffffUL
#define _mxINT32 long
#define _mxUINT32 unsigned long
#else
#define _mxINT32 int
#define _mxUINT32 unsigned int
#endif
#define _mxINT16 short
#define _mxUINT16 unsigned short
#endif

/* WINAPI is __stdcall on Windows (it matters on 32-bit Windows) and nothing elsewhere. */
#ifndef WINAPI
#if defined(_WIN32)
#define WINAPI __stdcall
#else
#define WINAPI
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Session (sections 6.1-6.5) ---- */

#if defined(_WIN32)
/* hInst is the vendor's HINSTANCE argument; pass NULL (it is not used). */
#ifdef __cplusplus
_mxINT16 WINAPI rInit_MatrixAPI(void *hInst = NULL);
#else
_mxINT16 WINAPI rInit_MatrixAPI(void *hInst);
#endif
#else
_mxINT16 WINAPI rInit_MatrixAPI(void);
#endif
_mxINT16 WINAPI rRelease_MatrixAPI(void);
void WINAPI rReset_MatrixAPI(void);

/* ---- Licences (sections 6.6, 6.7) ---- */

_mxINT16 WINAPI rLogIn_MatrixNet(_mxINT32 UserCode, _mxINT16 AppSlot, _mxINT16 DngNr);
_mxINT16 WINAPI rLogOut_MatrixNet(_mxINT32 UserCode, _mxINT16 AppSlot, _mxINT16 DngNr);

/* ---- Run-time configuration (section 7.3): call before rInit_MatrixAPI ---- */

_mxINT16 WINAPI rSetConfig_MatrixNet(_mxINT16 nAccess, char *nFile);
#if defined(_WIN32)
wchar_t *WINAPI MxNet_SetIP(wchar_t *ip);
#else
char *WINAPI MxNet_SetIP(char *ip);
#endif
_mxINT32 WINAPI MxNet_SetPort(_mxINT32 port);
_mxINT32 WINAPI MxNet_SetTimeOut(_mxINT32 nTimeOut);

/* ---- Dongle queries the server answers ---- */

_mxINT16 WINAPI rDongle_Count(_mxINT16 PortNr);
_mxINT16 WINAPI rDongle_Find(void);
_mxINT16 WINAPI rDongle_Exit(void);
_mxINT32 WINAPI rDongle_ReadSerNr(_mxINT32 UserCode, _mxINT16 DngNr, _mxINT16 PortNr);
_mxINT16 WINAPI rDongle_ReadData(_mxINT32 UserCode, _mxINT32 *Data, _mxINT16 Count,
                                 _mxINT16 DngNr, _mxINT16 PortNr);
_mxINT16 WINAPI rDongle_ReadDataEx(_mxINT32 UserCode, _mxINT32 *Data, _mxINT16 Fpos,
                                   _mxINT16 Count, _mxINT16 DngNr, _mxINT16 PortNr);
/* The login counts are 32-bit in the vendor's Windows header and 16-bit in its Linux one. */
#if defined(_WIN32)
#define MXNET2_LOGIN_COUNT _mxINT32
#else
#define MXNET2_LOGIN_COUNT _mxINT16
#endif
MXNET2_LOGIN_COUNT WINAPI rDongle_GetLoginCount(_mxINT32 UserCode, _mxINT16 AppSlot,
                                                _mxINT16 DngNr, _mxINT16 PortNr);
/* *ClientNames: tab-separated names owned by the library, valid until this thread's next call. */
MXNET2_LOGIN_COUNT WINAPI rDongle_GetLoginCountEx(_mxINT32 UserCode, _mxINT16 AppSlot,
                                                  _mxINT16 DngNr, _mxINT16 PortNr,
                                                  char **ClientNames);

/* ---- Exported for programs that import them; they answer -302 (not available) ---- */

_mxINT32 WINAPI rGetVersionAPI(void); /* this library's version, major << 16 | minor */
_mxINT32 WINAPI rGetVersionDRV(void);
_mxINT32 WINAPI rGetVersionDRV_USB(void);
void WINAPI rSetW95Access(_mxINT16 Flag); /* does nothing */
_mxINT16 WINAPI rGetPortAdr(_mxINT16 PortNr);
_mxINT16 WINAPI rPausePrinterActivity(void);
_mxINT16 WINAPI rResumePrinterActivity(void);
_mxINT32 WINAPI rGetConfig_MatrixNet(_mxINT16 Category);
_mxINT32 WINAPI rDongle_Version(_mxINT16 DngNr, _mxINT16 PortNr);
_mxINT32 WINAPI rDongle_Model(_mxINT16 DngNr, _mxINT16 PortNr);
_mxINT16 WINAPI rDongle_MemSize(_mxINT16 DngNr, _mxINT16 PortNr);
_mxINT16 WINAPI rDongle_WriteData(_mxINT32 UserCode, _mxINT32 *Data, _mxINT16 Count,
                                  _mxINT16 DngNr, _mxINT16 PortNr);
_mxINT16 WINAPI rDongle_WriteDataEx(_mxINT32 UserCode, _mxINT32 *Data, _mxINT16 Fpos,
                                    _mxINT16 Count, _mxINT16 DngNr, _mxINT16 PortNr);
_mxINT16 WINAPI rDongle_WriteKey(_mxINT32 UserCode, _mxINT32 *KeyData, _mxINT16 DngNr,
                                 _mxINT16 PortNr);
_mxINT16 WINAPI rDongle_GetKeyFlag(_mxINT32 UserCode, _mxINT16 DngNr, _mxINT16 PortNr);
_mxINT16 WINAPI rDongle_EncryptData(_mxINT32 UserCode, _mxINT32 *DataBlock, _mxINT16 DngNr,
                                    _mxINT16 PortNr);
_mxINT16 WINAPI rDongle_DecryptData(_mxINT32 UserCode, _mxINT32 *DataBlock, _mxINT16 DngNr,
                                    _mxINT16 PortNr);
_mxINT16 WINAPI rDongle_SetDriverFlag(_mxINT32 UserCode, _mxINT16 DriverFlag, _mxINT16 DngNr,
                                      _mxINT16 PortNr);
_mxINT16 WINAPI rDongle_GetDriverFlag(_mxINT32 UserCode, _mxINT16 DngNr, _mxINT16 PortNr);
_mxINT32 WINAPI rDongle_GetDetectTime(_mxINT32 UserCode, _mxINT32 *DetectTime, _mxINT16 DngNr,
                                      _mxINT16 PortNr);

#ifdef __cplusplus
}
#endif

#endif /* MXNET2_API_H */
