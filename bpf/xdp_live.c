/* XDP programs for live traffic on veth: reflect, redirect (devmap, ifindex,
 * cpumap), per-flow counters, and a counter of the xdp:xdp_exception tracepoint. */
#include "common.h"
#include <linux/tcp.h>
#include <linux/udp.h>

COUNTERS(verdicts, 8);

/* Where redirects go and the MAC addresses they write: set by the test. */
struct fwd {
	__u32 ifindex;
	__u32 cpu;
	__u8 dmac[ETH_ALEN];
	__u8 smac[ETH_ALEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fwd);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} devices SEC(".maps");

/* CPUs 0 and 1 only: max_entries above the kernel's NR_CPUS is E2BIG, and small
 * kernels (6.12-test on x86_64) have NR_CPUS=2. */
struct {
	__uint(type, BPF_MAP_TYPE_CPUMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct bpf_cpumap_val);
} cpus SEC(".maps");

/* where[0]: 1 + the CPU the redirecting program ran on; where[1]: the same for the
 * program the cpumap entry runs on the target CPU. */
COUNTERS(where, 2);

struct flow {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 protocol;
	__u8 pad[3];
};

struct flow_stats {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct flow);
	__type(value, struct flow_stats);
} flows SEC(".maps");

struct exception {
	__u32 count;
	__u32 act;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exception);
} exceptions SEC(".maps");

static __always_inline struct fwd *fwd_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&config, &zero);
}

static __always_inline int set_macs(struct xdp_md *ctx, const struct fwd *cfg)
{
	struct ethhdr *eth = (void *)(long)ctx->data;

	if ((void *)(eth + 1) > (void *)(long)ctx->data_end)
		return -1;
	__builtin_memcpy(eth->h_dest, cfg->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, cfg->smac, ETH_ALEN);
	return 0;
}

static __always_inline void set_where(__u32 slot)
{
	__u64 *cpu = bpf_map_lookup_elem(&where, &slot);

	if (cpu)
		*cpu = bpf_get_smp_processor_id() + 1;
}

SEC("xdp") int xdp_redirect_devmap(struct xdp_md *ctx)
{
	struct fwd *cfg = fwd_config();

	if (!cfg || set_macs(ctx, cfg))
		return XDP_ABORTED;
	bump(&verdicts, XDP_REDIRECT);
	return bpf_redirect_map(&devices, 0, 0);
}

SEC("xdp") int xdp_redirect_ifindex(struct xdp_md *ctx)
{
	struct fwd *cfg = fwd_config();

	if (!cfg || set_macs(ctx, cfg))
		return XDP_ABORTED;
	bump(&verdicts, XDP_REDIRECT);
	return bpf_redirect(cfg->ifindex, 0);
}

SEC("xdp") int xdp_redirect_cpu(struct xdp_md *ctx)
{
	struct fwd *cfg = fwd_config();

	if (!cfg)
		return XDP_ABORTED;
	set_where(0);
	bump(&verdicts, XDP_REDIRECT);
	return bpf_redirect_map(&cpus, cfg->cpu, 0);
}

SEC("xdp/cpumap") int xdp_on_target_cpu(struct xdp_md *ctx)
{
	set_where(1);
	return XDP_PASS;
}

/* The IPv4 UDP datagram goes back where it came from: MACs, addresses and ports
 * swapped (the checksums stay valid: their sums do not depend on the order). */
SEC("xdp") int xdp_reflect(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u8 mac[ETH_ALEN];
	__be32 addr;
	__be16 port;

	if ((void *)(udp + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->ihl != 5 || ip->protocol != IPPROTO_UDP) {
		bump(&verdicts, XDP_PASS);
		return XDP_PASS;
	}
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	addr = ip->saddr;
	ip->saddr = ip->daddr;
	ip->daddr = addr;
	port = udp->source;
	udp->source = udp->dest;
	udp->dest = port;
	bump(&verdicts, XDP_TX);
	return XDP_TX;
}

/* Packets and bytes per IPv4 TCP/UDP flow; everything passes. */
SEC("xdp") int xdp_flows(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct flow key = {};
	struct flow_stats *stats, first = {1, 0};
	__be16 *ports;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_TCP)
		return XDP_PASS;
	ports = (void *)ip + ip->ihl * 4;
	if ((void *)(ports + 2) > data_end)
		return XDP_PASS;
	key.saddr = ip->saddr;
	key.daddr = ip->daddr;
	key.sport = ports[0];
	key.dport = ports[1];
	key.protocol = ip->protocol;
	stats = bpf_map_lookup_elem(&flows, &key);
	if (stats) {
		__sync_fetch_and_add(&stats->packets, 1);
		__sync_fetch_and_add(&stats->bytes, data_end - data);
	} else {
		first.bytes = data_end - data;
		bpf_map_update_elem(&flows, &key, &first, BPF_NOEXIST);
	}
	return XDP_PASS;
}

/* The tracepoint's fields after the common header (its format file). */
struct xdp_exception_args {
	__u64 common;
	int prog_id;
	__u32 act;
	int ifindex;
};

SEC("tracepoint/xdp/xdp_exception") int count_xdp_exception(struct xdp_exception_args *args)
{
	__u32 zero = 0;
	struct exception *seen = bpf_map_lookup_elem(&exceptions, &zero);

	if (seen) {
		__sync_fetch_and_add(&seen->count, 1);
		seen->act = args->act;
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
