"""Running VMs: one guest booted with virtme-ng and its channel (vm), the leash
that kills it with its owner, the console reader, KVM or TCG, the import
bundle, and the root filesystem of foreign-arch guests."""
