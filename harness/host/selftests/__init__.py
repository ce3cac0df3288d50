"""Annotated BPF C files (the kernel selftests' progs/*.c, or a project's own) on
the host: building them as the selftests' Makefile does, and reading their
annotations from the object's BTF."""
