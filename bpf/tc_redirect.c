/* TC redirects with bpf_redirect(): to config.ifindex with config.flags
 * (0: out of that device, BPF_F_INGRESS: into it), MACs rewritten when
 * config.rewrite is set. tc_redirect_ignored shows the classic mistake: the
 * helper only records the target, the return value decides. */
#include "common.h"
#include <linux/pkt_cls.h>

struct redirect {
	__u32 ifindex;
	__u32 flags;
	__u32 rewrite;
	__u8 dmac[ETH_ALEN];
	__u8 smac[ETH_ALEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct redirect);
} config SEC(".maps");

COUNTERS(seen, 1);

static __always_inline struct redirect *target(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct redirect *cfg = bpf_map_lookup_elem(&config, &zero);

	bump(&seen, 0);
	if (cfg && cfg->rewrite) {
		bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), cfg->dmac, ETH_ALEN, 0);
		bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_source), cfg->smac, ETH_ALEN, 0);
	}
	return cfg;
}

SEC("tc") int tc_redirect(struct __sk_buff *skb)
{
	struct redirect *cfg = target(skb);

	return cfg ? bpf_redirect(cfg->ifindex, cfg->flags) : TC_ACT_SHOT;
}

SEC("tc") int tc_redirect_ignored(struct __sk_buff *skb)
{
	struct redirect *cfg = target(skb);

	if (cfg)
		bpf_redirect(cfg->ifindex, cfg->flags);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
