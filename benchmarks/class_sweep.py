"""CAT-Seg model forward at growing vocabulary sizes: this checkout against another, and/or the official code.

    python benchmarks/class_sweep.py --before /tmp/main-checkout --classes 2,20,150,300 --out sweep.json
    python benchmarks/class_sweep.py --official /tmp/catseg-official --classes 2,20,150,300

Times one sliding-window forward (the 5 views of one image, 384 x 384, random weights: speed does
not depend on their values) and the text encoding of T class names, and reads the peak RSS, each
in a fresh process so the peaks do not mix. The arms ("before", "after" = this checkout, and
"official") alternate for every vocabulary size, the first arm changing from one size to the
next (A/B interleaved), so the machine's load drifts into all of them alike; the ratio is the
figure to keep. Process CPU time (user + system of all threads) is reported beside wall time: on a
machine shared with other jobs it moves far less with their load. All arms see the same views
and class names, and the script reports the largest difference of their logits from ours.

`--official DIR` runs the official CAT-Seg code from a checkout of github.com/KU-CVLAB/CAT-Seg
(see `official_catseg.py`; it needs einops, timm, ftfy and regex, found on the caller's
PYTHONPATH too) with our seed-0 weights written in its key layout. It times the same work as our
child: its `get_text_embeds` on the T prompts, and the CLIP encoding, guidance upsampling and
CATSegHead (predictor, Aggregator, decoder) that its sliding-window inference runs on the 5 views,
up to the per-class logits. Its max |logit diff| and max |text diff| against ours should be
~1e-5 or less. Its peak RSS includes building our model to take its weights from.
The official process keeps glibc's default allocator settings, as the official code's users run
it; ours gets the setting `model.create_model` makes on the CPU (`model.chunks.reuse_freed_cpu_memory`).
`--official-our-allocator` gives the official process that setting too, for a like-for-like figure.

Every arm records the host's page cache when it starts (`page_cache_bytes`, "Cached" in
/proc/meminfo). The official forward faults in 6-11 GiB of fresh memory; with the page cache full
(11 GiB of this 24 GiB machine) the kernel reclaims it page by page, and the official arm ran
10-45 % slower while ours (2 GiB, reused) did not move (BENCHMARKS.md). Compare runs at a similar
page cache, e.g. after `sync; echo 3 > /proc/sys/vm/drop_caches` (root).

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


def _inputs(size: int, classes: int):
    """The views and class names every arm sees."""
    import torch

    views = torch.randn(5, 3, size, size, generator=torch.Generator().manual_seed(1))
    return views, [f"class number {i}" for i in range(classes)]


def _timed(work):
    """(result, wall seconds, process CPU seconds) of `work()`."""
    import time

    start, cpu_start = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - start, time.process_time() - cpu_start


def _report(text, text_times, logits, forward_times, outputs_out: Path) -> None:
    import resource

    import torch

    torch.save({"logits": logits, "text": text.detach()}, outputs_out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"text_s": text_times[0], "text_cpu_s": text_times[1], "forward_s": forward_times[0],
                      "forward_cpu_s": forward_times[1], "peak_rss_bytes": peak}))


def child(model_name: str, classes: int, threads: int, outputs_out: Path) -> None:
    import torch

    import model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = model.create_model(model_name, device="cpu")
    views, names = _inputs(net.config.crop_size, classes)
    text, *text_times = _timed(lambda: model.encode_classes(net, names))
    with torch.no_grad():
        logits, *forward_times = _timed(lambda: net(views, text))
    _report(text, text_times, logits, forward_times, outputs_out)


def official_child(official: Path, model_name: str, classes: int, threads: int, outputs_out: Path,
                   our_allocator: bool) -> None:
    """The official code's forward with the weights our child gets (seed 0), on the same inputs.

    The weights come from `CATSeg(config)`, what `create_model` builds without a checkpoint, but
    without its CPU allocator setting (`model.chunks.reuse_freed_cpu_memory`): the official code
    runs under glibc's defaults, as its users run it, unless `our_allocator`.
    """
    import torch

    import model
    from model.chunks import reuse_freed_cpu_memory
    from model.training.export import to_official_state_dict
    from official_catseg import build_official, official_forward, official_text_embeddings

    if our_allocator:
        reuse_freed_cpu_memory()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ours = model.CATSeg(model.get_config(model_name)).eval()
    size, state = ours.config.crop_size, to_official_state_dict(ours.canonical_state_dict(), ours.config)
    del ours
    views, names = _inputs(size, classes)
    with tempfile.TemporaryDirectory() as workdir:
        net = build_official(official, state, model_name, names, Path(workdir))
    del state
    text, *text_times = _timed(lambda: official_text_embeddings(net, names))
    logits, *forward_times = _timed(lambda: official_forward(net, views))
    _report(text, text_times, logits, forward_times, outputs_out)


def page_cache_bytes() -> int | None:
    """The host's page cache ("Cached" in /proc/meminfo), or None where there is no such file."""
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, value = line.partition(":")
        if name == "Cached":
            return int(value.split()[0]) * 1024
    return None


def run_child(checkout: Path, model_name: str, classes: int, threads: int, outputs_out: Path,
              official: Path | None = None, our_allocator: bool = False) -> dict:
    """One arm in a fresh process: ours from `checkout`, or the official code from `official`."""
    cache = page_cache_bytes()
    # The official arm keeps the caller's PYTHONPATH after ours: the official code's own
    # dependencies (einops, ...) may be installed there.
    path = [str(checkout)] + ([os.environ["PYTHONPATH"]] if official is not None and os.environ.get("PYTHONPATH") else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--model", model_name, "--classes",
               str(classes), "--threads", str(threads), "--outputs", str(outputs_out)]
    if official is not None:
        command += ["--official", str(official)] + (["--official-our-allocator"] if our_allocator else [])
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=checkout)
    if done.returncode != 0:
        raise SystemExit(f"the {'official' if official else checkout} arm failed at T={classes}:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "page_cache_bytes": cache}


def _ratio_table(rows: list[dict], arm: str, labels: tuple[str, str], ratio: str, diff_keys: tuple[str, ...]) -> None:
    """Print one markdown table of an arm against ours ("after"); `ratio` is the arm's time / ours."""
    other, mine = labels
    diffs = " | ".join(k.replace("_", " ") for k in diff_keys)
    print(f"| classes | forward {other} (s) | {mine} (s) | {ratio} | CPU time {other} (s) | {mine} (s) | {ratio} | "
          f"text {other} (s) | {mine} (s) | peak RSS {other} (GiB) | {mine} (GiB) | {diffs} |")
    print("|---:" * (11 + len(diff_keys)) + "|")
    for r in rows:
        b, a = r[arm], r["after"]
        print(f"| {r['classes']} | {b['forward_s']:.2f} | {a['forward_s']:.2f} | {b['forward_s'] / a['forward_s']:.2f}x | "
              f"{b['forward_cpu_s']:.1f} | {a['forward_cpu_s']:.1f} | {b['forward_cpu_s'] / a['forward_cpu_s']:.2f}x | "
              f"{b['text_s']:.2f} | {a['text_s']:.2f} | {b['peak_rss_bytes'] / 2**30:.2f} | "
              f"{a['peak_rss_bytes'] / 2**30:.2f} | " + " | ".join(f"{r[k]:.1e}" for k in diff_keys) + " |")


def _max_diff(a: Path, b: Path, key: str) -> float:
    import torch

    return (torch.load(a)[key] - torch.load(b)[key]).abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="the other checkout (e.g. a worktree of main)")
    parser.add_argument("--official", type=Path,
                        help="a checkout of the official CAT-Seg code (github.com/KU-CVLAB/CAT-Seg), run as a third arm")
    parser.add_argument("--official-our-allocator", action="store_true",
                        help="run the official arm with our CPU allocator setting too (like for like); by default "
                             "it keeps glibc's defaults, as the official code's users run it")
    parser.add_argument("--model", default="catseg-b")
    parser.add_argument("--classes", default="2,20,150,300")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the rows here (JSON)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--outputs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.official is not None:
            official_child(args.official, args.model, int(args.classes), args.threads, args.outputs,
                           args.official_our_allocator)
        else:
            child(args.model, int(args.classes), args.threads, args.outputs)
        return
    if args.before is None and args.official is None:
        parser.error("give --before CHECKOUT, --official DIR, or both")

    import torch

    arms = {"after": dict(checkout=REPO)}
    if args.before is not None:
        arms["before"] = dict(checkout=args.before.resolve())
    if args.official is not None:
        arms["official"] = dict(checkout=REPO, official=args.official.resolve(), our_allocator=args.official_our_allocator)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, classes in enumerate(int(c) for c in args.classes.split(",")):
            outputs = {arm: Path(tmp, f"{arm}.pt") for arm in arms}
            row = {"classes": classes}
            order = list(arms) if index % 2 else list(arms)[::-1]  # alternate which arm runs first
            for arm in order:
                row[arm] = run_child(model_name=args.model, classes=classes, threads=args.threads,
                                     outputs_out=outputs[arm], **arms[arm])
            after = row["after"]
            cache = [row[arm]["page_cache_bytes"] for arm in order]
            known = None not in cache
            line = [f"T={classes}: " + (f"page cache {min(cache) / 2**30:.1f}-{max(cache) / 2**30:.1f} GiB, " if known else "")
                    + f"ours forward {after['forward_s']:.2f} s (CPU {after['forward_cpu_s']:.1f} s), "
                    f"text {after['text_s']:.2f} s, peak RSS {after['peak_rss_bytes'] / 2**30:.2f} GiB"]
            for arm, diff_key in (("before", "max_abs_logit_diff"), ("official", "official_max_abs_logit_diff")):
                if arm in arms:
                    other = row[arm]
                    row[diff_key] = _max_diff(outputs[arm], outputs["after"], "logits")
                    line.append(f"{arm} forward {other['forward_s']:.2f} s ({other['forward_s'] / after['forward_s']:.2f}x "
                                f"ours; CPU {other['forward_cpu_s']:.1f} s, {other['forward_cpu_s'] / after['forward_cpu_s']:.2f}x), "
                                f"text {other['text_s']:.2f} s, peak RSS {other['peak_rss_bytes'] / 2**30:.2f} GiB, "
                                f"max |logit diff| {row[diff_key]:.1e}")
            if "official" in arms:
                row["official_max_abs_text_diff"] = _max_diff(outputs["official"], outputs["after"], "text")
            rows.append(row)
            print("; ".join(line), flush=True)
    print(f"\n{args.model}, one sliding forward (5 views), {args.threads} threads, fp32, torch {torch.__version__}\n")
    if "before" in arms:
        _ratio_table(rows, "before", ("before", "after"), "speed-up", ("max_abs_logit_diff",))
        print()
    if "official" in arms:
        _ratio_table(rows, "official", ("official", "ours"), "official/ours",
                     ("official_max_abs_logit_diff", "official_max_abs_text_diff"))
    if args.out:
        from model.common.files import atomic_write_json

        atomic_write_json(args.out, {"model": args.model, "threads": args.threads, "rows": rows})


if __name__ == "__main__":
    main()
