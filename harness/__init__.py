"""bpfvm: run eBPF tests inside VMs booted on real Linux kernels.

Layout: ``bpfvm.host`` runs on the machine that starts pytest,
``bpfvm.guest`` runs inside the VM. Directly in ``bpfvm``: the pytest
plugin (``plugin``), the test-author API that runs in the guest
(``bpf``, ``net``, ``offload``, ``verifier``), and plain data and logic
shared by both sides (``target``, ``arches``, ``protocol``, ``properties``,
``requirements``, ``items``, ``kconfig``, ``vlog``, ``expect``). In the
repository the package's code lives in harness/ and its data in kernels/.
"""
__version__ = "0.2.0"
