/* UDP datagrams to port config[0] go to the AF_XDP socket of their receive queue
 * (XSKMAP); everything else, and frames of a queue without a socket, pass. */
#include "common.h"
#include <linux/udp.h>

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} config SEC(".maps");

/* 0: redirected, 1: passed */
COUNTERS(seen, 2);

SEC("xdp") int xdp_to_xsk(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u32 zero = 0, *port = bpf_map_lookup_elem(&config, &zero);

	if (port && (void *)(udp + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IP) &&
	    ip->ihl == 5 && ip->protocol == IPPROTO_UDP && udp->dest == bpf_htons(*port)) {
		bump(&seen, 0);
		return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	}
	bump(&seen, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
