/* A TC classifier that counts packets per direction (skb->ingress_ifindex
 * is set on ingress only) and returns the action in action[0]. */
#include "common.h"
#include <linux/pkt_cls.h>

COUNTERS(seen, 2);

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} action SEC(".maps");

SEC("tc") int tc_count(struct __sk_buff *skb)
{
	__u32 zero = 0, *act = bpf_map_lookup_elem(&action, &zero);

	bump(&seen, skb->ingress_ifindex ? 0 : 1);
	return act ? *act : TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
