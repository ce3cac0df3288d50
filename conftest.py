"""Repository-level pytest configuration for bpfvm's own runs.

The plugin itself is loaded through its pytest11 entry point; this file
only holds what is particular to running this repository's tests.
"""
