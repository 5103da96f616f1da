"""Benchmark the memory a step's output costs: a shell step printing `--mb` MB (default
100), run through `run_shell` as the engine runs it, in a fresh child process per case so
each has its own peak RSS.

Cases, in the same run: `baseline` (a step printing one line), `bounded` (today's
`run_shell`: streamed into a bounded tail, orchestrator/output_tail.py) and `communicate`
(what run_shell did before issue 16: `Popen.communicate()`, holding all of it). Reported:
each child's peak RSS (ru_maxrss) and its growth over the baseline.
Target: `bounded` grows less than 20 MB over the baseline, whatever `--mb` is.

    .venv/bin/python bench/output.py [--mb 100]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(case: str, mb: int) -> None:
    sys.path.insert(0, str(ROOT))
    from orchestrator.actions import run_shell
    from orchestrator.workflow.definitions import ShellAction

    flood = f"head -c {mb * 1024 * 1024} /dev/zero | tr '\\0' x; echo"
    argv = ["sh", "-c", "echo one line" if case == "baseline" else flood]
    if case == "communicate":
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, _ = proc.communicate()
        kept = len(out[-4000:])
    else:
        kept = len(run_shell(ShellAction(tuple(argv)), {}, None, env={"PATH": "/usr/bin:/bin"})
                   ["stdout"])  # fmt: skip
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"case": case, "peak_mb": peak_kb / 1024, "kept": kept}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.mb)
        return
    results = {}
    for case in ("baseline", "bounded", "communicate"):
        out = subprocess.run([sys.executable, __file__, "--child", case, "--mb", str(args.mb)],
                             check=True, capture_output=True, text=True).stdout  # fmt: skip
        results[case] = json.loads(out)
    base = results["baseline"]["peak_mb"]
    print(f"a shell step printing {args.mb} MB; peak RSS of a fresh process running it")
    for case, r in results.items():
        print(f"  {case:12} {r['peak_mb']:7.1f} MB  (+{r['peak_mb'] - base:6.1f} MB over the "
              f"baseline; {r['kept']} chars kept)")  # fmt: skip
    grew = results["bounded"]["peak_mb"] - base
    print(f"target: bounded grows < 20 MB: {'met' if grew < 20 else 'NOT met'} ({grew:.1f} MB)")


if __name__ == "__main__":
    main()
