/* Programs that tail-call themselves until the kernel stops them; runs[0]
 * counts how many times the body ran (the first run plus each tail call). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} chain_table SEC(".maps");

COUNTERS(runs, 2);

SEC("xdp") int chain(struct xdp_md *ctx)
{
	bump(&runs, 0);
	bpf_tail_call(ctx, &chain_table, 0);
	return XDP_PASS;
}

/* The tail call made from a BPF-to-BPF subprogram. */
static __noinline int call_next(struct xdp_md *ctx)
{
	bump(&runs, 1);
	bpf_tail_call(ctx, &chain_table, 1);
	return XDP_PASS;
}

SEC("xdp") int chain_subprog(struct xdp_md *ctx)
{
	return call_next(ctx);
}

char LICENSE[] SEC("license") = "GPL";
