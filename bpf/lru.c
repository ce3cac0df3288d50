/* An LRU hash and a program that looks keys up (which marks them used:
 * lookups from user space do not). */
#include "common.h"

#define LRU_SIZE 64

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LRU_SIZE);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, __u32);
	__type(value, __u64);
} lru SEC(".maps");

/* Looks up the u32 key after the Ethernet header; XDP_PASS if present. */
SEC("xdp") int lru_touch(struct xdp_md *ctx)
{
	__u32 *key = after_eth(ctx, sizeof(*key));

	if (!key)
		return XDP_ABORTED;
	return bpf_map_lookup_elem(&lru, key) ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
