"""bpfvm: run eBPF tests inside VMs booted on real Linux kernels.

Layout: ``bpfvm.host`` runs on the machine that starts pytest,
``bpfvm.guest`` runs inside the VM, and the modules directly in
``bpfvm`` are plain data and logic shared by both. (In the repository the
package's code lives in harness/ and its data in kernels/.)
"""
__version__ = "0.2.0"
