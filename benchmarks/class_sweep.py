"""CAT-Seg model forward at growing vocabulary sizes, this checkout against another (A/B).

    python benchmarks/class_sweep.py --before /tmp/main-checkout --classes 2,20,150,300 --out sweep.json

Times one sliding-window forward (the 5 views of one image, 384 x 384, random weights: speed does
not depend on their values) and the text encoding of T class names, and reads the peak RSS, each
in a fresh process so the peaks do not mix. The "before" and "after" processes alternate for every
vocabulary size (A/B interleaved), so the machine's load drifts into both alike; the ratio is the
figure to keep. Process CPU time (user + system of all threads) is reported beside wall time: on a
machine shared with other jobs it moves far less with their load. Both runs see the same views and class names, and the script also reports the
largest difference of their logits.

The child process (`--child`) imports `model` from the checkout its PYTHONPATH names.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(model_name: str, classes: int, threads: int, logits_out: Path) -> None:
    import resource
    import time

    import torch

    import model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = model.create_model(model_name, device="cpu")
    size = net.config.crop_size
    views = torch.randn(5, 3, size, size, generator=torch.Generator().manual_seed(1))
    names = [f"class number {i}" for i in range(classes)]
    start, cpu_start = time.perf_counter(), time.process_time()
    text = model.encode_classes(net, names)
    text_seconds, text_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    with torch.no_grad():
        start, cpu_start = time.perf_counter(), time.process_time()
        logits = net(views, text)
        forward_seconds, forward_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    torch.save(logits, logits_out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"text_s": text_seconds, "text_cpu_s": text_cpu, "forward_s": forward_seconds,
                      "forward_cpu_s": forward_cpu, "peak_rss_bytes": peak}))


def run_child(checkout: Path, model_name: str, classes: int, threads: int, logits_out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--model", model_name, "--classes",
               str(classes), "--threads", str(threads), "--logits", str(logits_out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=checkout)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="the other checkout (e.g. a worktree of main)")
    parser.add_argument("--model", default="catseg-b")
    parser.add_argument("--classes", default="2,20,150,300")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the rows here (JSON)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--logits", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.model, int(args.classes), args.threads, args.logits)
        return
    if args.before is None:
        parser.error("--before CHECKOUT is required")

    import torch

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for classes in (int(c) for c in args.classes.split(",")):
            before_logits, after_logits = Path(tmp, "before.pt"), Path(tmp, "after.pt")
            before = run_child(args.before.resolve(), args.model, classes, args.threads, before_logits)
            after = run_child(REPO, args.model, classes, args.threads, after_logits)
            diff = (torch.load(before_logits) - torch.load(after_logits)).abs().max().item()
            row = {"classes": classes, "before": before, "after": after, "max_abs_logit_diff": diff}
            rows.append(row)
            print(f"T={classes}: forward {before['forward_s']:.2f} -> {after['forward_s']:.2f} s "
                  f"({before['forward_s'] / after['forward_s']:.2f}x; CPU time {before['forward_cpu_s']:.1f} -> "
                  f"{after['forward_cpu_s']:.1f} s, {before['forward_cpu_s'] / after['forward_cpu_s']:.2f}x), text {before['text_s']:.2f} -> "
                  f"{after['text_s']:.2f} s, peak RSS {before['peak_rss_bytes'] / 2**30:.2f} -> "
                  f"{after['peak_rss_bytes'] / 2**30:.2f} GiB, max |logit diff| {diff:.1e}", flush=True)
    print(f"\n{args.model}, one sliding forward (5 views), {args.threads} threads, fp32, torch {torch.__version__}\n")
    print("| classes | forward before (s) | after (s) | speed-up | CPU time before (s) | after (s) | speed-up | "
          "text before (s) | after (s) | peak RSS before (GiB) | after (GiB) | max logit diff |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        b, a = r["before"], r["after"]
        print(f"| {r['classes']} | {b['forward_s']:.2f} | {a['forward_s']:.2f} | {b['forward_s'] / a['forward_s']:.2f}x | "
              f"{b['forward_cpu_s']:.1f} | {a['forward_cpu_s']:.1f} | {b['forward_cpu_s'] / a['forward_cpu_s']:.2f}x | "
              f"{b['text_s']:.2f} | {a['text_s']:.2f} | {b['peak_rss_bytes'] / 2**30:.2f} | "
              f"{a['peak_rss_bytes'] / 2**30:.2f} | {r['max_abs_logit_diff']:.1e} |")
    if args.out:
        from model.common.files import atomic_write_json

        atomic_write_json(args.out, {"model": args.model, "threads": args.threads, "rows": rows})


if __name__ == "__main__":
    main()
