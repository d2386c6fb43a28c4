/* SPDX-License-Identifier: GPL-2.0 */
/* UNDER_SANITIZER: 1 when built with ASan or TSan (gcc or clang), else 0. */
#ifndef IPBLOCK_TEST_SANITIZER_H
#define IPBLOCK_TEST_SANITIZER_H

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif

#endif /* IPBLOCK_TEST_SANITIZER_H */
