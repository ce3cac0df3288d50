"""The job summary of one action cell (or, with --accel, only the accelerators used).

    summary.py OUT KERNELS ARCHES EXIT_CODE    Markdown on stdout
    summary.py --accel OUT                     kvm, tcg or kvm,tcg ("" when nothing ran)

Only the standard library: OUT/compat.json is what pytest --compat-report wrote.
"""
import json
import sys
from pathlib import Path

ACCEL_WORDS = {"kvm": "KVM", "tcg": "TCG (emulated: no usable KVM on this runner, or a foreign arch)"}


def columns(out: Path) -> dict:
    try:
        return json.loads((out / "compat.json").read_text())["columns"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def accels(cols: dict) -> list[str]:
    return sorted({str(meta.get("accel", "")) for meta in cols.values()} - {"", "none"})


def summary(out: Path, kernels: str, arches: str, exit_code: str) -> str:
    verdict = "passed" if exit_code == "0" else f"failed (exit {exit_code})"
    lines = [f"### bpfvm: {kernels} on {arches}: {verdict}", ""]
    cols = columns(out)
    for name, meta in sorted(cols.items()):
        accel = str(meta.get("accel", ""))
        lines.append(f"- {name} ({meta.get('release', '?')}): {ACCEL_WORDS.get(accel, accel)}")
    if cols:
        lines += ["", (out / "compat.md").read_text() if (out / "compat.md").exists() else ""]
    else:
        lines.append("No test ran in a VM: see the job's log.")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--accel"]:
        print(",".join(accels(columns(Path(argv[1])))))
        return 0
    out, kernels, arches, exit_code = argv
    sys.stdout.write(summary(Path(out), kernels, arches, exit_code))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
