"""The user_properties keys bpfvm puts on test reports, shared by host and guest.

Guest-side helpers record findings in the report (verdicts, golden files);
the host's end-of-run reports read them back. The host adds where each VM
test ran; those keys also appear in JUnit records.
"""
VERDICT = "bpfvm_verdict"          # {"program", "kernel", "accepted", "message"}
GOLDEN_USED = "bpfvm_golden_used"  # {"kernel", "name"}: a golden file a test read
GOLDEN = "bpfvm_golden"            # {"kernel", "name", "text"}: a golden file to (re)write
NOTE = "bpfvm_note"                # a line for the end-of-run summary
EXPECTED_SKIP = "bpfvm_expected_skip"  # why a skip is one the project lists (expected_skips)

# Where a VM test ran (the host adds them to every report of a VM test).
KERNEL = "kernel"
ARCH = "arch"
KERNEL_VERSION = "kernel_version"
KERNEL_RELEASE = "kernel_release"
ACCEL = "accel"
KERNEL_ID = "bpfvm_kernel_id"
