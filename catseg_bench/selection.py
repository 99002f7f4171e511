"""The one grammar every command uses to select datasets: `all`, `suite:NAME`, `domain:NAME`, or names.

`all` is the benchmark's datasets (MESS); `suite:NAME` the datasets of a suite, i.e. of any benchmark
file (`dataset_specs/mess.toml`, `dataset_specs/in_domain.toml`, or one in your `--specs` folder);
`domain:NAME` a MESS domain (or the domain of your own specs); otherwise dataset names (`paxray4`) or
evaluation-set names (`paxray4.lungs`). Items combine in a comma list (`suite:in_domain,cwfid`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from catseg_bench.errors import BenchError
from catseg_bench.specs import Benchmark, DatasetSpec, EvalSet, find_suite


SUITE_PREFIX = "suite:"


def select_eval_sets(value: str, specs: dict[str, DatasetSpec], benchmark: Benchmark,
                     suites: Mapping[str, Benchmark] | None = None) -> list[EvalSet]:
    """A comma list of `all` (the benchmark's datasets), `suite:NAME` (one of `suites`, by benchmark
    name), `domain:NAME`, dataset and eval-set names; each set once, in the order selected.

    A composite dataset (PAXRay-4) expands to its subsets; `paxray4.lungs` selects one subset.
    `suites` are the loaded benchmarks (`specs.load_all`); without them `benchmark` is the one suite.
    """
    selected: list[EvalSet] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        found = _select_item(item, specs, benchmark, suites or {benchmark.name: benchmark})
        selected.extend(es for es in found if es not in selected)
    if not selected:
        raise BenchError(f"--datasets {value!r} selects nothing; use all, suite:NAME, domain:NAME or dataset names")
    return selected


def select_datasets(names: Sequence[str], specs: dict[str, DatasetSpec], benchmark: Benchmark,
                    suites: Mapping[str, Benchmark] | None = None) -> list[DatasetSpec]:
    """The datasets (whole specs, in selection order) that `names` select; an eval set selects its dataset."""
    chosen = select_eval_sets(",".join(names), specs, benchmark, suites)
    return [specs[name] for name in dict.fromkeys(es.spec.name for es in chosen)]


def _select_item(item: str, specs: dict[str, DatasetSpec], benchmark: Benchmark,
                 suites: Mapping[str, Benchmark]) -> list[EvalSet]:
    if item == "all":
        return [es for name in benchmark.members for es in specs[name].eval_sets()]
    if item.startswith(SUITE_PREFIX):
        suite = find_suite(item.removeprefix(SUITE_PREFIX).strip(), suites)
        return [es for name in suite.members for es in specs[name].eval_sets()]
    if item.startswith("domain:"):
        wanted = item.removeprefix("domain:").strip().lower()
        for domain in benchmark.domains:
            if wanted in (domain.name.lower(), domain.display_name.lower()):
                return [es for name in domain.datasets for es in specs[name].eval_sets()]
        user_domain = [s for s in specs.values() if s.domain.lower() == wanted]
        if user_domain:
            return [es for spec in user_domain for es in spec.eval_sets()]
        known = ", ".join(d.name for d in benchmark.domains)
        raise BenchError(f"--datasets {item}: no such domain; known domains: {known}")
    return _find(item, specs)


def _find(item: str, specs: dict[str, DatasetSpec]) -> list[EvalSet]:
    if item in specs:
        return specs[item].eval_sets()
    for spec in specs.values():
        for eval_set in spec.eval_sets():
            if eval_set.name == item:
                return [eval_set]
    spec_name, dot, _ = item.partition(".")
    if dot and spec_name in specs:
        names = ", ".join(es.name for es in specs[spec_name].eval_sets())
        raise BenchError(f"dataset '{item}': no such subset; {spec_name} has: {names}")
    raise BenchError(f"unknown dataset '{item}'; see `bench datasets list` (add your own with --specs DIR)")
