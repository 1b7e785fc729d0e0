/*
 * tap.h - a minimal test helper for the C tests: CHECK(cond, ...) records a failure with file/line,
 * DONE() prints "N passed, N failed" and returns the exit status.
 */
#ifndef LB_TEST_TAP_H
#define LB_TEST_TAP_H
#include <stdio.h>

static int tap_passed, tap_failed;

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (cond) {                                                     \
			tap_passed++;                                           \
		} else {                                                        \
			tap_failed++;                                           \
			fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                           \
			fprintf(stderr, "\n");                                  \
		}                                                               \
	} while (0)

#define CHECK_EQ(a, b) CHECK((long long)(a) == (long long)(b), "%lld != %lld", (long long)(a), (long long)(b))

#define DONE()                                                                  \
	(printf("%s: %d passed, %d failed\n", __FILE__, tap_passed, tap_failed), tap_failed ? 1 : 0)

#endif
