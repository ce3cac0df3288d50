"""Code that runs on the machine where pytest starts (never in a guest).

kernels/ gets kernels, vm/ runs guests, run/ runs a pytest session through
them, report/ writes the end-of-run tables; cli.py is the `bpfvm` command,
tools.py finds host programs and sysdeps.py installs the Debian packages.
"""
