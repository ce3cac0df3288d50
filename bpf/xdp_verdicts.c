/* One XDP program per verdict, each counting its runs in runs[slot]. */
#include "common.h"

COUNTERS(runs, 8);

#define VERDICT(name, value, slot)              \
	SEC("xdp") int name(struct xdp_md *ctx) \
	{                                       \
		bump(&runs, slot);              \
		return value;                   \
	}

VERDICT(xdp_aborted, XDP_ABORTED, 0)
VERDICT(xdp_drop, XDP_DROP, 1)
VERDICT(xdp_pass, XDP_PASS, 2)
VERDICT(xdp_tx, XDP_TX, 3)
/* Not an XDP action: test runs hand it back unchanged. */
VERDICT(xdp_out_of_range, 99, 4)

/* The verdict is the first byte after the Ethernet header. */
SEC("xdp") int xdp_verdict_in_packet(struct xdp_md *ctx)
{
	__u8 *verdict = after_eth(ctx, sizeof(*verdict));

	return verdict ? *verdict : XDP_ABORTED;
}

/* Reports what the context says: the verdict is ingress_ifindex. */
SEC("xdp") int xdp_ifindex(struct xdp_md *ctx)
{
	return ctx->ingress_ifindex;
}

char LICENSE[] SEC("license") = "GPL";
