"""bpfvm: run eBPF tests inside VMs booted on real Linux kernels.

Layout: ``harness.host`` runs on the machine that starts pytest,
``harness.guest`` runs inside the VM, and the modules directly in
``harness`` are plain data and logic shared by both.
"""
