/* SPDX-License-Identifier: ISC */
/*
 * crashpoint.h - test-only points where the daemon kills itself, to prove
 * crash recovery (docs/queue.md, tests/integration/test_crash.py).
 *
 * Built only into the test build (-DDETOUR_TESTING). There,
 * DETOUR_CRASHPOINT=NAME makes CRASHPOINT("NAME") send SIGKILL to the process:
 * nothing is flushed or cleaned up, as in a power cut of the process.
 * In normal builds CRASHPOINT() compiles to nothing.
 */
#ifndef DETOUR_CRASHPOINT_H
#define DETOUR_CRASHPOINT_H

#ifdef DETOUR_TESTING
void crashpoint(const char *name);
#define CRASHPOINT(name) crashpoint(name)
#else
#define CRASHPOINT(name) ((void)0)
#endif

#endif
