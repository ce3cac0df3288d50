/* Growing and shrinking packets: the delta comes from params[0] (bytes). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __s32);
} params SEC(".maps");

/* The helpers' return values, for the tests to read. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __s64);
} result SEC(".maps");

static __always_inline int delta(void)
{
	__u32 zero = 0;
	__s32 *d = bpf_map_lookup_elem(&params, &zero);

	return d ? *d : 0;
}

static __always_inline void record(long ret)
{
	__u32 zero = 0;

	bpf_map_update_elem(&result, &zero, &ret, BPF_ANY);
}

#define FILL 0xab

/* params[0] > 0 moves data back (grows the front), filled with FILL. */
SEC("xdp") int xdp_head(struct xdp_md *ctx)
{
	int d = delta();
	long ret = bpf_xdp_adjust_head(ctx, -d);
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *p = data;

	record(ret);
	if (ret)
		return XDP_ABORTED;
	for (int i = 0; i < 64; i++) {
		if (i >= d || (void *)(p + i + 1) > data_end)
			break;
		p[i] = FILL;
	}
	return XDP_PASS;
}

/* params[0] > 0 grows the tail (new bytes set to FILL), < 0 shrinks it. */
SEC("xdp") int xdp_tail(struct xdp_md *ctx)
{
	int d = delta();
	__u32 old_len = ctx->data_end - ctx->data;
	long ret = bpf_xdp_adjust_tail(ctx, d);
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	record(ret);
	if (ret)
		return XDP_ABORTED;
	for (int i = 0; i < 64; i++) {
		__u8 *p = data + (old_len & 0x3fff) + i;

		if (i >= d || (void *)(p + 1) > data_end)
			break;
		*p = FILL;
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
