// SPDX-License-Identifier: MIT
/* Every annotation bpfvm checks, once holding (*_holds: must pass) and,
 * where it can, once not (*_wrong: must fail); tests/test_vm_annotated.py
 * runs this file on two kernels. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpfvm/annotations.h>

SEC("socket") __description("returns 3") __success __retval(3)
__naked void retval_holds(void) { asm volatile ("r0 = 3; exit;"); }

SEC("socket") __success __retval(4)
__naked void retval_wrong(void) { asm volatile ("r0 = 3; exit;"); }

SEC("socket") __success
__naked void success_wrong(void) { asm volatile ("exit;"); }

SEC("socket") __failure __msg("R0 !read_ok")
__naked void failure_holds(void) { asm volatile ("exit;"); }

SEC("socket") __failure __msg("R0 !read_ok")
__naked void failure_wrong(void) { asm volatile ("r0 = 0; exit;"); }

SEC("socket") __failure __msg("a message no verifier prints")
__naked void msg_wrong(void) { asm volatile ("exit;"); }

SEC("socket") __failure __msg("R{{[0-9]+}} !read_ok")
__naked void msg_regex_holds(void) { asm volatile ("exit;"); }

SEC("socket") __failure __msg("R{{[a-z]+}} !read_ok")
__naked void msg_regex_wrong(void) { asm volatile ("exit;"); }

/* Log level 2 lists every instruction: both lines, in this order. */
SEC("socket") __success __log_level(2) __msg("(b7) r0 = 1") __msg("(95) exit")
__naked void log_level_holds(void) { asm volatile ("r0 = 1; exit;"); }

SEC("socket") __success __log_level(2) __msg("(95) exit") __msg("(b7) r0 = 1")
__naked void msg_order_wrong(void) { asm volatile ("r0 = 1; exit;"); }

/* Without a log level an accepted program has no log to match. */
SEC("socket") __success __msg("(b7) r0 = 1")
__naked void log_level_wrong(void) { asm volatile ("r0 = 1; exit;"); }

SEC("socket") __failure __msg("R0 !read_ok") __not_msg("invalid mem access")
__naked void not_msg_holds(void) { asm volatile ("exit;"); }

SEC("socket") __failure __not_msg("R0 !read_ok")
__naked void not_msg_wrong(void) { asm volatile ("exit;"); }

/* A pointer returned is fine for root, a leak without CAP_BPF and friends. */
SEC("socket") __success __failure_unpriv __msg_unpriv("R0 leaks addr")
__naked void unpriv_holds(void) { asm volatile ("r0 = r10; exit;"); }

SEC("socket") __success __success_unpriv
__naked void unpriv_wrong(void) { asm volatile ("r0 = r10; exit;"); }

SEC("socket") __success __success_unpriv __retval_unpriv(5) __retval(5)
__naked void retval_unpriv_holds(void) { asm volatile ("r0 = 5; exit;"); }

/* A 4-byte packet load at offset 1 is misaligned only under BPF_F_STRICT_ALIGNMENT. */
SEC("tc") __failure __flag(BPF_F_STRICT_ALIGNMENT) __msg("misaligned packet access")
__naked void flag_holds(void)
{
	asm volatile ("r2 = *(u32 *)(r1 + 76); r3 = *(u32 *)(r1 + 80);"
		      "r4 = r2; r4 += 8; if r4 > r3 goto l_flag_holds;"
		      "r0 = *(u32 *)(r2 + 1); l_flag_holds: r0 = 0; exit;");
}

SEC("tc") __failure __msg("misaligned packet access")
__naked void flag_wrong(void)
{
	asm volatile ("r2 = *(u32 *)(r1 + 76); r3 = *(u32 *)(r1 + 80);"
		      "r4 = r2; r4 += 8; if r4 > r3 goto l_flag_wrong;"
		      "r0 = *(u32 *)(r2 + 1); l_flag_wrong: r0 = 0; exit;");
}

SEC("socket") __success __xlated("0: r0 = 3") __xlated("1: exit")
__naked void xlated_holds(void) { asm volatile ("r0 = 3; exit;"); }

SEC("socket") __success __xlated("0: r0 = 4")
__naked void xlated_wrong(void) { asm volatile ("r0 = 3; exit;"); }

SEC("socket") __success __arch_x86_64
__naked void arch_x86_64_only(void) { asm volatile ("r0 = 0; exit;"); }

SEC("socket") __success __arch_arm64
__naked void arch_arm64_only(void) { asm volatile ("r0 = 0; exit;"); }

SEC("socket") __success __load_if_JITed()
__naked void jited_only(void) { asm volatile ("r0 = 0; exit;"); }

SEC("socket") __success __arch_x86_64 __jited("movl $0x0, %eax")
__naked void jited_text(void) { asm volatile ("r0 = 0; exit;"); }

/* Sections newer than Debian 12's libbpf (1.1) and a syscall program's test run. */
SEC("tcx/ingress") __success __retval(2)
__naked void newer_section_holds(void) { asm volatile ("r0 = 2; exit;"); }

SEC("syscall") __success __retval(7)
__naked void syscall_retval_holds(void) { asm volatile ("r0 = 7; exit;"); }

/* Loaded beside every privileged test of the file, never a test itself. */
SEC("socket") __auxiliary
__naked void helper_program(void) { asm volatile ("r0 = 0; exit;"); }

char LICENSE[] SEC("license") = "GPL";
