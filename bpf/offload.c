/* Programs for the offload suite. Loaded with offload=port, every program
 * and map here is bound to a netdevsim device, whose offloaded maps hold
 * at most 2 entries and take no map flags. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} htab SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} array SEC(".maps");

SEC("xdp") int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp") int xdp_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

/* Reads both maps, so loading it needs the device to accept offloaded maps. */
SEC("xdp") int xdp_maps(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *hit = bpf_map_lookup_elem(&htab, &key);
	__u64 *slot = bpf_map_lookup_elem(&array, &key);

	return hit && slot && *hit == *slot ? XDP_DROP : XDP_PASS;
}

SEC("tc") int tc_pass(struct __sk_buff *skb)
{
	return 0; /* TC_ACT_OK */
}

char LICENSE[] SEC("license") = "GPL";
