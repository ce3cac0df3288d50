/* A dispatcher keyed by an opcode: the first byte after the Ethernet header
 * selects a slot of jmp_table; handlers record who ran in ran[0]. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 8);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} jmp_table SEC(".maps");

COUNTERS(ran, 1);

#define FELL_THROUGH 0xff

static __always_inline int mark(__u64 who, int verdict)
{
	__u32 zero = 0;

	bpf_map_update_elem(&ran, &zero, &who, BPF_ANY);
	return verdict;
}

SEC("xdp") int dispatch(struct xdp_md *ctx)
{
	__u8 *op = after_eth(ctx, sizeof(*op));

	if (!op)
		return XDP_ABORTED;
	bpf_tail_call(ctx, &jmp_table, *op);
	return mark(FELL_THROUGH, XDP_PASS);
}

SEC("xdp") int op_drop(struct xdp_md *ctx) { return mark(1, XDP_DROP); }
SEC("xdp") int op_tx(struct xdp_md *ctx) { return mark(2, XDP_TX); }
SEC("xdp") int op_pass(struct xdp_md *ctx) { return mark(3, XDP_PASS); }
SEC("xdp") int op_replacement(struct xdp_md *ctx) { return mark(4, XDP_DROP); }

/* A program of another type, which an XDP program array must refuse. */
SEC("tp/syscalls/sys_enter_getppid") int not_xdp(void *ctx) { return 0; }

char LICENSE[] SEC("license") = "GPL";
