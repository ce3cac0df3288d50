/* Shared by the suites' BPF programs: UAPI headers and libbpf's helpers. */
#ifndef BPFVM_COMMON_H
#define BPFVM_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/types.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* An array map of u64 counters the tests read back. */
#define COUNTERS(name, n)                                   \
	struct {                                            \
		__uint(type, BPF_MAP_TYPE_ARRAY);           \
		__uint(max_entries, n);                     \
		__type(key, __u32);                         \
		__type(value, __u64);                       \
	} name SEC(".maps")

static __always_inline void bump(void *map, __u32 key)
{
	__u64 *value = bpf_map_lookup_elem(map, &key);

	if (value)
		__sync_fetch_and_add(value, 1);
}

/* size bytes right after the Ethernet header, or NULL if the packet is shorter. */
static __always_inline void *after_eth(struct xdp_md *ctx, __u32 size)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	void *p = data + sizeof(struct ethhdr);

	return p + size > data_end ? NULL : p;
}

#endif
