/* Longest-prefix match on the IPv4 destination address. */
#include "common.h"

struct lpm_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key);
	__type(value, __u32);
} routes SEC(".maps");

/* The verdict is the matching route's value (XDP_ABORTED when none). */
SEC("xdp") int lpm_route(struct xdp_md *ctx)
{
	struct iphdr *ip = after_eth(ctx, sizeof(*ip));
	struct lpm_key key = {.prefixlen = 32};
	__u32 *value;

	if (!ip)
		return XDP_ABORTED;
	__builtin_memcpy(key.addr, &ip->daddr, 4);
	value = bpf_map_lookup_elem(&routes, &key);
	return value ? *value : XDP_ABORTED;
}

char LICENSE[] SEC("license") = "GPL";
