"""``evodiff-ray hardware``: the Apple Silicon chip profiles and this machine's device."""

from __future__ import annotations

import argparse
import json

from evodiff_ray.cli import Command


def _gb(n: int | None) -> str:
    return "-" if not n else f"{n / 2**30:.1f} GiB"


def format_table(chips, local) -> str:
    """Chip table plus a local-device block, as text."""
    from evodiff_ray.hardware.budget import memory_budget_mb

    head = f"{'chip':<10} {'memory GB':<18} {'GB/s':>6} {'GPU cores':>10} {'FP32 TF':>8} {'NE TOPS':>8} {'budget MiB*':>11}"
    lines = [head, "-" * len(head)]
    for c in chips:
        est = set(c.estimated)
        tf = f"{c.fp32_tflops:.1f}" + ("~" if "fp32_tflops" in est else " ")
        ne = f"{c.neural_engine_tops:g}" + ("~" if "neural_engine_tops" in est else " ")
        bw = f"{c.bandwidth_gbs:g}" + ("" if not c.binned_bandwidth_gbs else "+")
        lines.append(f"{c.name:<10} {'/'.join(map(str, c.memory_gb)):<18} {bw:>6} "
                     f"{'/'.join(map(str, c.gpu_cores)):>10} {tf:>8} {ne:>8} {memory_budget_mb(c):>11.0f}")
    lines += ["", "~ estimate (see evodiff_ray/hardware/chips.py for sources); + binned parts have less bandwidth;",
              "* smallest memory x 0.75 (estimated usable fraction; a real Mac reports its own)", ""]
    rows = [("host", local.hostname), ("system", f"{local.system} {local.machine}"),
            ("cpu", f"{local.cpu_model or '-'} ({local.cpu_count} logical)"), ("memory", _gb(local.memory_bytes)),
            ("apple chip", local.chip or "-"), ("gpu cores", str(local.gpu_cores or "-")),
            ("mps", "available" if local.mps_available else ("built, not available" if local.mps_built else "no")),
            ("mps recommended max", _gb(local.recommended_max_memory_bytes)),
            ("cuda", ", ".join(local.cuda_devices) or "-"), ("torch", local.torch or "-"),
            ("evaluates on", local.device)]
    lines.append("local device")
    lines += [f"  {k:<20} {v}" for k, v in rows]
    return "\n".join(lines)


class HardwareCommand(Command):
    """List the chip profiles and detect the local device."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")

    def run(self, args: argparse.Namespace) -> int:
        from evodiff_ray.hardware.budget import memory_budget_mb
        from evodiff_ray.hardware.chips import CHIPS
        from evodiff_ray.hardware.detect import detect_local

        local = detect_local()
        if args.format == "json":
            budget = None
            if local.chip:
                budget = memory_budget_mb(local.chip, recommended_max_bytes=local.recommended_max_memory_bytes)
            print(json.dumps({
                "chips": [dict(c.to_dict(), budget_mb=memory_budget_mb(c)) for c in CHIPS.values()],
                "local": dict(local.to_dict(), budget_mb=budget),
            }, indent=2))
        else:
            print(format_table(CHIPS.values(), local))
        return 0
