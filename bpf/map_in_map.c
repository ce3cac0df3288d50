/* Maps of maps: outer array and hash whose values are inner arrays. */
#include "common.h"

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
};

struct inner inner_a SEC(".maps");
struct inner inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner);
} outer_array SEC(".maps") = {
	.values = {[0] = &inner_a},
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner);
} outer_hash SEC(".maps");

/* The verdict is inner[0] of the map in outer_array[0] (XDP_ABORTED if none). */
SEC("xdp") int read_outer_array(struct xdp_md *ctx)
{
	__u32 zero = 0;
	void *inner = bpf_map_lookup_elem(&outer_array, &zero);
	__u64 *value;

	if (!inner)
		return XDP_ABORTED;
	value = bpf_map_lookup_elem(inner, &zero);
	return value ? *value : XDP_ABORTED;
}

/* The same through outer_hash[7]. */
SEC("xdp") int read_outer_hash(struct xdp_md *ctx)
{
	__u32 zero = 0, key = 7;
	void *inner = bpf_map_lookup_elem(&outer_hash, &key);
	__u64 *value;

	if (!inner)
		return XDP_ABORTED;
	value = bpf_map_lookup_elem(inner, &zero);
	return value ? *value : XDP_ABORTED;
}

char LICENSE[] SEC("license") = "GPL";
