/*
 * Fixtures shared by the CPUID tests: test_cpuid.c (policy parsing, KVM's
 * real table) defines them, test_cpuid_apply.c (x86_cpuid_apply() on
 * hand-made tables) uses them to build policies.
 */
#ifndef TESTS_UNIT_ARCH_X86_64_TEST_CPUID_H
#define TESTS_UNIT_ARCH_X86_64_TEST_CPUID_H

#include "arch/x86_64/cpuid.h"

/* Clear the errbuf parse_ok() reports into (a suite .init). */
void reset_err(void);

/* Parse `spec` into a policy, failing the test with the parser's message on error. */
struct x86_cpu_policy parse_ok(const char *spec);

#endif /* TESTS_UNIT_ARCH_X86_64_TEST_CPUID_H */
