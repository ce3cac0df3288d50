/* A bloom filter (Linux 5.16+) fed from the packet: the u32 after the
 * Ethernet header is pushed; the verdict says whether it was there before. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__uint(max_entries, 128);
	__uint(map_extra, 3); /* hash functions */
	__type(value, __u32);
} seen SEC(".maps");

SEC("xdp") int bloom_check_add(struct xdp_md *ctx)
{
	__u32 *value = after_eth(ctx, sizeof(*value));
	__u32 copy;

	if (!value)
		return XDP_ABORTED;
	copy = *value;
	if (bpf_map_peek_elem(&seen, &copy) == 0)
		return XDP_DROP; /* maybe seen before */
	bpf_map_push_elem(&seen, &copy, BPF_ANY);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
