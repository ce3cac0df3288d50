/* The samples/bpf xdp1 idea: count packets per IP protocol in a per-CPU
 * array indexed by protocol number (IPv4 protocol / IPv6 next header), and
 * drop them. One 802.1Q tag is looked through. */
#include "common.h"

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} rxcnt SEC(".maps");

SEC("xdp") int xdp_proto_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u64 off = sizeof(*eth);
	__u16 proto;
	__u32 ipproto;
	__u64 *count;

	if (data + off > data_end)
		return XDP_DROP;
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vlan = data + off;

		off += sizeof(*vlan);
		if (data + off > data_end)
			return XDP_DROP;
		proto = vlan->proto;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + off;

		if ((void *)(ip + 1) > data_end)
			return XDP_DROP;
		ipproto = ip->protocol;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;

		if ((void *)(ip6 + 1) > data_end)
			return XDP_DROP;
		ipproto = ip6->nexthdr;
	} else {
		ipproto = 0;
	}
	count = bpf_map_lookup_elem(&rxcnt, &ipproto);
	if (count)
		*count += 1;
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
