"""Where one CAT-Seg forward spends its time: CLIP, spatial blocks, class blocks, decoder.

    python benchmarks/stage_times.py --classes 150 --budgets 1,4,16,64,none --rounds 2

One sliding forward (the 5 views of one image, random weights, fp32) timed by forward hooks on the
model's stages, for every CPU chunk budget in `--budgets` (MiB per chunk, see `model/chunks.py`;
`none` runs the stages unchunked), the budgets interleaved round after round in one process. With
a checkout that predates `model/chunks.py` on PYTHONPATH, only `--budgets default` applies.
`--profile` also prints the torch profiler's top operators for the last forward.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch


def stage_modules(net) -> dict[str, list[torch.nn.Module]]:
    layers = net.aggregator.layers
    return {
        "aggregator": [net.aggregator],
        "spatial blocks": [layer.swin_block for layer in layers],
        "class blocks": [layer.attention for layer in layers],
        "decoder": [net.decoder],
    }


def timed_forward(net, views: torch.Tensor, text: torch.Tensor) -> dict[str, float]:
    """Seconds per stage of one forward (a stage called several times is summed)."""
    spent: dict[str, float] = defaultdict(float)
    started: dict[int, float] = {}
    hooks = []
    for stage, modules in stage_modules(net).items():
        for module in modules:
            def before(m, args, key=id(module)):
                started[key] = time.perf_counter()

            def after(m, args, out, key=id(module), stage=stage):
                spent[stage] += time.perf_counter() - started[key]

            hooks += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    start = time.perf_counter()
    with torch.no_grad():
        net(views, text)
    total = time.perf_counter() - start
    for hook in hooks:
        hook.remove()
    other = total - spent["aggregator"] - spent["decoder"]
    return {"total": total, "CLIP + guidance": other, **{k: v for k, v in spent.items() if k != "aggregator"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="catseg-b")
    parser.add_argument("--classes", type=int, default=150)
    parser.add_argument("--budgets", default="default", help="comma list of MiB per chunk, 'none' or 'default'")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    import model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = model.create_model(args.model, device="cpu").eval()
    size = net.config.crop_size
    views = torch.randn(5, 3, size, size, generator=torch.Generator().manual_seed(1))
    text = torch.nn.functional.normalize(
        torch.randn(args.classes, net.config.embed_dim, generator=torch.Generator().manual_seed(2)), dim=-1)
    for _ in range(args.rounds):
        for budget in args.budgets.split(","):
            if budget != "default":
                import model.chunks

                model.chunks.CPU_CHUNK_BYTES = None if budget == "none" else int(float(budget) * 2**20)
            times = timed_forward(net, views, text)
            print(f"T={args.classes} budget {budget:>7}: " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()),
                  flush=True)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
            net(views, text)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()
