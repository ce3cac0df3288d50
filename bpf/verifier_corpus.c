/* Programs the verifier must reject, one reason each (suites/test_verifier.py
 * loads one program at a time). */
#include "common.h"
#include <linux/pkt_cls.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} values SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} hashed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} jump SEC(".maps");

/* The lookup may return NULL: dereferencing it unchecked. (A hash map: newer
 * kernels know that an array lookup with a constant key in range cannot fail.) */
SEC("xdp") int lookup_without_null_check(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&hashed, &key);

	return *value;
}

/* Reading packet data without comparing against data_end first. */
SEC("xdp") int packet_without_bounds_check(struct xdp_md *ctx)
{
	return *(__u8 *)(long)ctx->data;
}

/* The map value is 8 bytes; this reads the 8 after them. */
SEC("xdp") int map_value_out_of_bounds(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&values, &key);

	return value ? value[1] : 0;
}

/* The key's stack slot is never written before the helper reads it. */
SEC("xdp") int uninitialized_stack_to_helper(struct xdp_md *ctx)
{
	__u32 key;
	__u64 *value = bpf_map_lookup_elem(&values, &key);

	return value ? XDP_PASS : XDP_DROP;
}

/* The seeds' case: selecting skb->cb[i] by a runtime index turns into
 * arithmetic on the context pointer. */
SEC("tc") int ctx_cb_by_index(struct __sk_buff *skb)
{
	__u32 sum = 0;

#pragma clang loop unroll(disable)
	for (int i = 0; i < 5; i++)
		sum += skb->cb[i];
	return sum;
}

/* A socket looked up and never released. */
SEC("tc") int socket_reference_leaked(struct __sk_buff *skb)
{
	struct bpf_sock_tuple tuple = {};
	struct bpf_sock *sk;

	sk = bpf_sk_lookup_tcp(skb, &tuple, sizeof(tuple.ipv4), BPF_F_CURRENT_NETNS, 0);
	return sk ? TC_ACT_SHOT : TC_ACT_OK;
}

/* A tail call below a frame that already uses more than 256 bytes of stack. */
static __attribute__((noinline)) int tail_from_subprogram(struct __sk_buff *skb)
{
	volatile char buf[64];

	buf[0] = skb->len;
	bpf_tail_call(skb, &jump, 0);
	return buf[0];
}

SEC("tc") int tail_call_with_deep_stack(struct __sk_buff *skb)
{
	char buf[300];  /* filled by a helper: the verifier counts all of it */

	if (bpf_skb_load_bytes(skb, 0, buf, sizeof(buf)) < 0)
		return TC_ACT_OK;
	return tail_from_subprogram(skb) + buf[7];
}

char LICENSE[] SEC("license") = "GPL";
