/* Packets rewritten in flight, checksums updated incrementally (RFC 1624):
 *  - xdp_nat: IPv4 UDP/TCP to port nat.match gets source address nat.saddr and
 *    destination port nat.dport;
 *  - xdp_tcpopt_strip / xdp_tcpopt_restore: a TCP segment of the flow to port
 *    nat.match whose options start with NOP NOP TIMESTAMP (Linux's layout on data
 *    segments) loses those 12 bytes, and gets them back from the stash further on.
 * Only IPv4 without IP options; anything else passes untouched. */
#include "common.h"
#include <linux/tcp.h>
#include <linux/udp.h>

struct nat {
	__be32 saddr;
	__be16 match;
	__be16 dport;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nat);
} config SEC(".maps");

/* 0: rewritten, 1: stripped, 2: restored */
COUNTERS(done, 4);

#define TCPOPT_NOP 1
#define TCPOPT_TIMESTAMP 8
#define TCPOLEN_TIMESTAMP 10
#define TSOPT_LEN 12 /* NOP NOP TIMESTAMP */
#define HEADERS (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct tcphdr))

struct segment {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__be32 seq;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct segment);
	__type(value, __u8[TSOPT_LEN]);
} stash SEC(".maps");

static __always_inline __u16 csum_fold(__s64 sum)
{
	__u32 csum = sum;

	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return ~csum;
}

/* The checksum *check once from[] (from_size bytes) became to[] (to_size bytes). */
static __always_inline __u16 csum_update(__u16 check, void *from, __u32 from_size,
					 void *to, __u32 to_size)
{
	return csum_fold(bpf_csum_diff(from, from_size, to, to_size, (__u16)~check));
}

static __always_inline struct nat *nat_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&config, &zero);
}

SEC("xdp") int xdp_nat(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;
	struct iphdr *ip = (void *)(eth + 1);
	struct nat *nat = nat_config();
	__be32 old_addr, new_addr, old_port = 0, new_port = 0;
	__u16 *l4_check;
	__be16 *dport;

	if (!nat || (void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->ihl != 5)
		return XDP_PASS;
	if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(ip + 1);

		if ((void *)(udp + 1) > data_end)
			return XDP_PASS;
		dport = &udp->dest;
		l4_check = udp->check ? &udp->check : NULL;  /* 0: no UDP checksum */
	} else if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip + 1);

		if ((void *)(tcp + 1) > data_end)
			return XDP_PASS;
		dport = &tcp->dest;
		l4_check = &tcp->check;
	} else {
		return XDP_PASS;
	}
	if (*dport != nat->match)
		return XDP_PASS;

	old_addr = ip->saddr;
	new_addr = nat->saddr;
	*(__be16 *)&old_port = *dport;
	*(__be16 *)&new_port = nat->dport;
	ip->saddr = new_addr;
	ip->check = csum_update(ip->check, &old_addr, 4, &new_addr, 4);
	*dport = nat->dport;
	if (l4_check) {
		__be32 from[2] = {old_addr, old_port}, to[2] = {new_addr, new_port};
		__u16 check = csum_update(*l4_check, from, sizeof(from), to, sizeof(to));

		/* a UDP checksum that computes to 0 is sent as all ones */
		*l4_check = check || ip->protocol == IPPROTO_TCP ? check : 0xffff;
	}
	bump(&done, 0);
	return XDP_PASS;
}

/* The IPv4 TCP segment of the configured flow (either direction), or NULL. */
static __always_inline struct tcphdr *flow_segment(struct xdp_md *ctx, struct iphdr **ipp)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *tcp = (void *)(ip + 1);
	struct nat *nat = nat_config();

	if (!nat || (void *)(tcp + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->ihl != 5 || ip->protocol != IPPROTO_TCP)
		return NULL;
	if (tcp->dest != nat->match && tcp->source != nat->match)
		return NULL;
	*ipp = ip;
	return tcp;
}

static __always_inline void stash_key(struct segment *key, struct iphdr *ip, struct tcphdr *tcp)
{
	key->saddr = ip->saddr;
	key->daddr = ip->daddr;
	key->sport = tcp->source;
	key->dport = tcp->dest;
	key->seq = tcp->seq;
}

/* Lengths and checksums after the TCP header grew by delta bytes (negative: shrank);
 * option[] holds the TSOPT_LEN bytes that came or went. */
static __always_inline void fix_headers(struct iphdr *ip, struct tcphdr *tcp, int delta,
					__u8 *option)
{
	__u32 tcp_len = bpf_ntohs(ip->tot_len) - sizeof(*ip);
	__be32 old_ip_word = *(__be32 *)ip, new_ip_word;
	__be32 old_tcp_word = *((__be32 *)tcp + 3), new_tcp_word;
	__be32 old_len = bpf_htonl(tcp_len), new_len = bpf_htonl(tcp_len + delta);
	struct { __be32 word; __be32 len; __u8 option[TSOPT_LEN]; } longer;
	struct { __be32 word; __be32 len; } shorter;

	ip->tot_len = bpf_htons(bpf_ntohs(ip->tot_len) + delta);
	tcp->doff += delta / 4;
	new_ip_word = *(__be32 *)ip;
	new_tcp_word = *((__be32 *)tcp + 3);
	ip->check = csum_update(ip->check, &old_ip_word, 4, &new_ip_word, 4);

	__builtin_memcpy(longer.option, option, TSOPT_LEN);
	longer.word = delta < 0 ? old_tcp_word : new_tcp_word;
	longer.len = delta < 0 ? old_len : new_len;
	shorter.word = delta < 0 ? new_tcp_word : old_tcp_word;
	shorter.len = delta < 0 ? new_len : old_len;
	if (delta < 0)
		tcp->check = csum_update(tcp->check, &longer, sizeof(longer), &shorter, sizeof(shorter));
	else
		tcp->check = csum_update(tcp->check, &shorter, sizeof(shorter), &longer, sizeof(longer));
}

SEC("xdp") int xdp_tcpopt_strip(struct xdp_md *ctx)
{
	struct iphdr *ip;
	struct tcphdr *tcp = flow_segment(ctx, &ip);
	__u8 headers[HEADERS], option[TSOPT_LEN];
	struct segment key = {};
	void *data, *data_end;
	__u8 *opt;

	if (!tcp || tcp->doff * 4 < sizeof(*tcp) + TSOPT_LEN)
		return XDP_PASS;
	opt = (void *)(tcp + 1);
	if ((void *)(opt + TSOPT_LEN) > (void *)(long)ctx->data_end)
		return XDP_PASS;
	if (opt[0] != TCPOPT_NOP || opt[1] != TCPOPT_NOP || opt[2] != TCPOPT_TIMESTAMP ||
	    opt[3] != TCPOLEN_TIMESTAMP)
		return XDP_PASS;
	__builtin_memcpy(option, opt, TSOPT_LEN);
	stash_key(&key, ip, tcp);
	fix_headers(ip, tcp, -TSOPT_LEN, option);

	data = (void *)(long)ctx->data;
	if (data + HEADERS > (void *)(long)ctx->data_end)
		return XDP_ABORTED;
	__builtin_memcpy(headers, data, HEADERS);
	/* The headers move up over the option; the front shrinks by as much. */
	if (bpf_xdp_adjust_head(ctx, TSOPT_LEN))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + HEADERS > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(data, headers, HEADERS);
	/* the key carries the stripped segment's seq: same as the original's */
	bpf_map_update_elem(&stash, &key, option, BPF_ANY);
	bump(&done, 1);
	return XDP_PASS;
}

SEC("xdp") int xdp_tcpopt_restore(struct xdp_md *ctx)
{
	struct iphdr *ip;
	struct tcphdr *tcp = flow_segment(ctx, &ip);
	__u8 headers[HEADERS], option[TSOPT_LEN], *stashed;
	struct segment key = {};
	void *data;

	if (!tcp)
		return XDP_PASS;
	stash_key(&key, ip, tcp);
	stashed = bpf_map_lookup_elem(&stash, &key);
	if (!stashed)
		return XDP_PASS;
	__builtin_memcpy(option, stashed, TSOPT_LEN);
	bpf_map_delete_elem(&stash, &key);
	fix_headers(ip, tcp, TSOPT_LEN, option);

	data = (void *)(long)ctx->data;
	if (data + HEADERS > (void *)(long)ctx->data_end)
		return XDP_ABORTED;
	__builtin_memcpy(headers, data, HEADERS);
	/* Room in front: the headers move down and the option goes after them. */
	if (bpf_xdp_adjust_head(ctx, -TSOPT_LEN))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	if (data + HEADERS + TSOPT_LEN > (void *)(long)ctx->data_end)
		return XDP_ABORTED;
	__builtin_memcpy(data, headers, HEADERS);
	__builtin_memcpy(data + HEADERS, option, TSOPT_LEN);
	bump(&done, 2);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
