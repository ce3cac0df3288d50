/* Maps of each basic kind, and small XDP programs that use them from the
 * kernel side so tests can check both directions. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} small_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} percpu_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u32);
} percpu_hash SEC(".maps");

struct flow {
	__u32 addr;
	__u16 port;
	__u16 proto;
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

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 8);
	__type(value, __u32);
} queue SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, 8);
	__type(value, __u32);
} stack SEC(".maps");

/* hash[3] = hash[1] + hash[2]: the program sees what user space wrote. */
SEC("xdp") int hash_sum(struct xdp_md *ctx)
{
	__u32 k1 = 1, k2 = 2, k3 = 3;
	__u64 *a = bpf_map_lookup_elem(&hash, &k1);
	__u64 *b = bpf_map_lookup_elem(&hash, &k2);
	__u64 sum;

	if (!a || !b)
		return XDP_ABORTED;
	sum = *a + *b;
	bpf_map_update_elem(&hash, &k3, &sum, BPF_ANY);
	return XDP_PASS;
}

/* Count a run on the current CPU in both per-CPU maps. */
SEC("xdp") int percpu_count(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u32 one = 1, *value;

	bump(&percpu_array, key);
	value = bpf_map_lookup_elem(&percpu_hash, &key);
	if (value)
		__sync_fetch_and_add(value, 1);
	else
		bpf_map_update_elem(&percpu_hash, &key, &one, BPF_NOEXIST);
	return XDP_PASS;
}

/* Per-flow packet and byte counts keyed by (IPv4 source, UDP source port,
 * protocol), as a flow table would keep them. */
SEC("xdp") int flow_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__be16 *ports = (void *)(ip + 1);
	struct flow key = {};
	struct flow_stats *stats, fresh = {};

	if ((void *)(ports + 2) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	key.addr = ip->saddr;
	key.port = bpf_ntohs(ports[0]);
	key.proto = ip->protocol;
	stats = bpf_map_lookup_elem(&flows, &key);
	if (!stats) {
		bpf_map_update_elem(&flows, &key, &fresh, BPF_NOEXIST);
		stats = bpf_map_lookup_elem(&flows, &key);
		if (!stats)
			return XDP_ABORTED;
	}
	__sync_fetch_and_add(&stats->packets, 1);
	__sync_fetch_and_add(&stats->bytes, data_end - data);
	return XDP_PASS;
}

/* Push the u32 after the Ethernet header to both the queue and the stack. */
SEC("xdp") int push_value(struct xdp_md *ctx)
{
	__u32 *value = after_eth(ctx, sizeof(*value));

	if (!value)
		return XDP_ABORTED;
	if (bpf_map_push_elem(&queue, value, BPF_ANY) || bpf_map_push_elem(&stack, value, BPF_ANY))
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
