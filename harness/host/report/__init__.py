"""End-of-run reports: the compatibility table (test x kernel), the verifier
verdicts and golden files, and verifier statistics compared across kernels."""
