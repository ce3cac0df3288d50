/* SPDX-License-Identifier: MIT */
/*
 * bpfvm's spelling of the kernel selftests' test annotations, for a
 * project's own annotated BPF programs. Each becomes a BTF decl tag on the
 * program's function, "comment:<n>:test_...", the form the kernel's
 * test_loader.c and bpfvm read; <n> keeps the tags in source order.
 *
 *   #include <bpfvm/annotations.h>
 *
 *   SEC("socket") __failure __msg("R0 !read_ok")
 *   __naked void no_return_value(void) { asm volatile ("exit;"); }
 *
 * pytest collects the file as one test per program and kernel.
 */
#ifndef BPFVM_ANNOTATIONS_H
#define BPFVM_ANNOTATIONS_H

#define __bpfvm_str(x) #x
#define __bpfvm_xstr(x) __bpfvm_str(x)
#define __bpfvm_tag(text) \
	__attribute__((btf_decl_tag("comment:" __bpfvm_xstr(__COUNTER__) ":" text)))

#define __success		__bpfvm_tag("test_expect_success")
#define __failure		__bpfvm_tag("test_expect_failure")
#define __success_unpriv	__bpfvm_tag("test_expect_success_unpriv")
#define __failure_unpriv	__bpfvm_tag("test_expect_failure_unpriv")
#define __msg(msg)		__bpfvm_tag("test_expect_msg=" msg)
#define __not_msg(msg)		__bpfvm_tag("test_expect_not_msg=" msg)
#define __msg_unpriv(msg)	__bpfvm_tag("test_expect_msg_unpriv=" msg)
#define __not_msg_unpriv(msg)	__bpfvm_tag("test_expect_not_msg_unpriv=" msg)
#define __xlated(msg)		__bpfvm_tag("test_expect_xlated=" msg)
#define __xlated_unpriv(msg)	__bpfvm_tag("test_expect_xlated_unpriv=" msg)
#define __jited(msg)		__bpfvm_tag("test_jited=" msg)
#define __retval(val)		__bpfvm_tag("test_retval=" #val)
#define __retval_unpriv(val)	__bpfvm_tag("test_retval_unpriv=" #val)
#define __log_level(level)	__bpfvm_tag("test_log_level=" #level)
#define __flag(flag)		__bpfvm_tag("test_prog_flags=" #flag)
#define __description(text)	__bpfvm_tag("test_description=" text)
#define __auxiliary		__bpfvm_tag("test_auxiliary")
#define __auxiliary_unpriv	__bpfvm_tag("test_auxiliary_unpriv")
#define __arch(arch)		__bpfvm_tag("test_arch=" arch)
#define __arch_x86_64		__arch("X86_64")
#define __arch_arm64		__arch("ARM64")
#define __caps_unpriv(caps)	__bpfvm_tag("test_caps_unpriv=" __bpfvm_xstr(caps))
#define __load_if_JITed()	__bpfvm_tag("load_mode=jited")
#define __load_if_no_JITed()	__bpfvm_tag("load_mode=no_jited")

#define CAP_NET_ADMIN	12
#define CAP_SYS_ADMIN	21
#define CAP_PERFMON	38
#define CAP_BPF		39

#ifndef __naked
#define __naked __attribute__((naked))
#endif

#endif
