/* Per-uid execve counters, one map per way of hooking execve. */
#include "common.h"
#include <asm/unistd.h>
#include <bpf/bpf_tracing.h>

#define PER_UID(name)                          \
	struct {                               \
		__uint(type, BPF_MAP_TYPE_HASH); \
		__uint(max_entries, 1024);     \
		__type(key, __u32);            \
		__type(value, __u64);          \
	} name SEC(".maps")

PER_UID(by_tracepoint);
PER_UID(by_kprobe);
PER_UID(by_raw_tracepoint);

static __always_inline void count(void *map)
{
	__u32 uid = (__u32)bpf_get_current_uid_gid();
	__u64 one = 1, *value = bpf_map_lookup_elem(map, &uid);

	if (value)
		__sync_fetch_and_add(value, 1);
	else
		bpf_map_update_elem(map, &uid, &one, BPF_NOEXIST);
}

SEC("tp/syscalls/sys_enter_execve") int execve_tp(void *ctx)
{
	count(&by_tracepoint);
	return 0;
}

/* libbpf resolves the arch's syscall symbol (__x64_sys_execve, ...). */
SEC("ksyscall/execve") int execve_kprobe(void *ctx)
{
	count(&by_kprobe);
	return 0;
}

/* raw_tp/sys_enter: args[1] is the syscall number. */
SEC("raw_tp/sys_enter") int execve_raw_tp(struct bpf_raw_tracepoint_args *ctx)
{
	if (ctx->args[1] == __NR_execve)
		count(&by_raw_tracepoint);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
