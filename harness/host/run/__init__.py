"""Running a pytest session on the host: the run's orchestration (runner), one
item dispatched to a guest and its reports (dispatch), xdist scheduling by
kernel, and the BPF objects guests ask the host to compile (bpfobjects)."""
