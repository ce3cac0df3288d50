/* The README's example: drop UDP to port 9 (discard), pass the rest, and
 * count packets per verdict. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 5);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

static __always_inline int verdict(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);

	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP) && ip->ihl == 5 &&
	    ip->protocol == IPPROTO_UDP && udp->dest == bpf_htons(9))
		return XDP_DROP;
	return XDP_PASS;
}

SEC("xdp") int xdp_count(struct xdp_md *ctx)
{
	__u32 action = verdict(ctx);
	__u64 *count = bpf_map_lookup_elem(&counts, &action);

	if (count)
		__sync_fetch_and_add(count, 1);
	return action;
}

char LICENSE[] SEC("license") = "GPL";
