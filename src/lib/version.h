/* SPDX-License-Identifier: ISC */
/* version.h - the release of detour every program reports. */
#ifndef DETOUR_VERSION_H
#define DETOUR_VERSION_H
#define DETOUR_VERSION "0.1.0"
#endif
