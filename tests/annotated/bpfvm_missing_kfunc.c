// SPDX-License-Identifier: MIT
/* What the kernel lacks is a skip naming it. A file of its own: libbpf
 * resolves every kfunc of an object at load, so one missing kfunc skips
 * each program of the file (a selftests file using bpf_testmod's kfuncs
 * skips as a whole). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpfvm/annotations.h>

extern void bpfvm_no_such_kfunc(void) __ksym;

SEC("tc") __success
int kfunc_missing(void *ctx)
{
	bpfvm_no_such_kfunc();
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
