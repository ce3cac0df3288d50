/* bpf_override_return (CONFIG_BPF_KPROBE_OVERRIDE): make getpid() fail with
 * -ENOMEM, for the process whose tgid is in target[0] only. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} target SEC(".maps");

COUNTERS(overrides, 1);

SEC("ksyscall/getpid") int fail_getpid(struct pt_regs *ctx)
{
	__u32 zero = 0, *tgid = bpf_map_lookup_elem(&target, &zero);

	if (!tgid || *tgid != bpf_get_current_pid_tgid() >> 32)
		return 0;
	bump(&overrides, 0);
	bpf_override_return(ctx, -12 /* ENOMEM */);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
