/* Records to user space through a ring buffer and a perf event array. */
#include "common.h"

struct record {
	__u32 seq;
	__u32 len;
	__u8 head[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf SEC(".maps");

COUNTERS(seq, 1);

static __always_inline int fill(struct xdp_md *ctx, struct record *rec)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	__u64 *next = bpf_map_lookup_elem(&seq, &zero);

	if (!next || data + sizeof(rec->head) > data_end)
		return -1;
	/* Test runs are serial; a fetching atomic add would need Linux 5.12. */
	rec->seq = (*next)++;
	rec->len = data_end - data;
	__builtin_memcpy(rec->head, data, sizeof(rec->head));
	return 0;
}

SEC("xdp") int emit_ringbuf(struct xdp_md *ctx)
{
	struct record *rec = bpf_ringbuf_reserve(&rb, sizeof(*rec), 0);

	if (!rec)
		return XDP_ABORTED;
	if (fill(ctx, rec)) {
		bpf_ringbuf_discard(rec, 0);
		return XDP_ABORTED;
	}
	bpf_ringbuf_submit(rec, 0);
	return XDP_PASS;
}

SEC("xdp") int emit_perf(struct xdp_md *ctx)
{
	struct record rec = {};

	if (fill(ctx, &rec))
		return XDP_ABORTED;
	if (bpf_perf_event_output(ctx, &perf, BPF_F_CURRENT_CPU, &rec, sizeof(rec)))
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
