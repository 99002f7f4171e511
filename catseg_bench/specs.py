"""Declarative dataset specs: load, validate strictly, hash.

A spec is one TOML file in ``dataset_specs/`` (shipped with the package) or in a user's ``--specs DIR``.
A TOML file with a ``[[domains]]`` array is a *benchmark* (``mess.toml``, ``in_domain.toml``), also
called a *suite*, instead: it names the domains in table order and the datasets of each; `--datasets
suite:NAME` selects its datasets and `bench table --suite NAME` lays out its table. Every validation
error names the file and the field.

The spec hash covers the fields that change what is evaluated (classes, ignore label, layout, split,
subsets), not documentation (licence, link, notes, how to prepare) nor the record of the prepared
labels (``label_fingerprint``, ``class_pixel_counts``, ``ignore_pixel_count``, which check the data),
so editing a licence string or recording a fingerprint does not make finished results stale while
renaming a class does.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections import Counter
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from catseg_bench.errors import BenchError
from model.common.files import user_path

LABEL_DTYPES = ("uint8", "uint16")
UNPAIRED_POLICIES = ("error", "skip")

# field name -> (types accepted, required)
_TOP_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "name": ((str,), True),
    "display_name": ((str,), True),
    "domain": ((str,), True),
    "split": ((str,), True),
    "num_images": ((int,), True),
    "class_names": ((list,), False),  # required unless the spec is composite
    "prompt_names": ((list,), False),
    "prediction_labels": ((list,), False),
    "ignore_index": ((int,), True),
    "background_index": ((int,), False),
    "classes_of_interest": ((list,), False),
    "license": ((str,), True),
    "link": ((str,), True),
    "mess_name": ((str,), False),
    "paper": ((str,), False),
    "citation": ((str,), False),
    "label_dtype": ((str,), False),
    "description": ((str,), False),
    "notes": ((str,), False),
    "data": ((dict,), True),
    "prepare": ((dict,), False),
    "subsets": ((list,), False),
    "label_fingerprint": ((str,), False),
    "class_pixel_counts": ((list,), False),
    "ignore_pixel_count": ((int,), False),
}
_DATA_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "image_dir": ((str,), True),
    "label_dir": ((str,), False),  # composite specs give one per subset
    "image_ext": ((str,), True),
    "label_ext": ((str,), True),
    "images_without_labels": ((str,), False),
}
_SUBSET_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "name": ((str,), True),
    "label_dir": ((str,), True),
    "class_names": ((list,), True),
    "classes_of_interest": ((list,), False),
    "mess_name": ((str,), False),
    "label_fingerprint": ((str,), False),
    "class_pixel_counts": ((list,), False),
    "ignore_pixel_count": ((int,), False),
}
# What the prepared labels of an evaluation set must hold (see catseg_bench/data/labelstats.py):
# checks of the data, not of what is evaluated, so they stay out of the spec hash.
_LABEL_RECORD_FIELDS = ("label_fingerprint", "class_pixel_counts", "ignore_pixel_count")
# `bench prepare` reads these; `recipe` names a function in catseg_bench.prepare.
_PREPARE_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "recipe": ((str,), False),
    "manual": ((bool,), False),
    "files": ((list,), False),
    "instructions": ((str,), False),
    "notes": ((str,), False),
    "options": ((dict,), False),
}
_BENCHMARK_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "name": ((str,), True),
    "display_name": ((str,), True),
    "description": ((str,), False),
    "aggregation": ((str,), True),
    "domains": ((list,), True),
}
_DOMAIN_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "name": ((str,), True),
    "display_name": ((str,), False),
    "datasets": ((list,), True),
}
_DOC_FIELDS = ("license", "link", "paper", "citation", "description", "notes", "prepare", "display_name",
               *_LABEL_RECORD_FIELDS)


class SpecError(BenchError):
    """A spec file that does not validate."""


@dataclass(frozen=True)
class DataLayout:
    """Where a prepared dataset lives under the data root, and how images pair with labels."""

    image_dir: str
    label_dir: str | None
    image_ext: str
    label_ext: str
    images_without_labels: str = "error"


@dataclass(frozen=True)
class LabelRecord:
    """What the prepared labels of one evaluation set hold, as its spec records it (each part optional).

    ``fingerprint`` is the digest of the decoded label arrays (``bench datasets fingerprint``);
    ``class_pixel_counts`` the pixels of each class over the whole split; ``ignore_pixel_count`` the
    pixels holding the ignore value. `bench prepare` and `bench datasets check` compare them with
    the data on disk.
    """

    fingerprint: str | None = None
    class_pixel_counts: tuple[int, ...] | None = None
    ignore_pixel_count: int | None = None

    @property
    def recorded(self) -> bool:
        return any(v is not None for v in (self.fingerprint, self.class_pixel_counts, self.ignore_pixel_count))


@dataclass(frozen=True)
class SubsetSpec:
    """One binary (or K-class) task of a composite dataset, sharing the images of its parent."""

    name: str
    label_dir: str
    class_names: tuple[str, ...]
    classes_of_interest: tuple[int, ...] | None = None
    mess_name: str | None = None
    labels: LabelRecord = LabelRecord()


@dataclass(frozen=True)
class EvalSet:
    """What one result file scores: a dataset, or one subset of a composite dataset."""

    name: str
    spec: "DatasetSpec"
    subset: str | None
    class_names: tuple[str, ...]
    classes_of_interest: tuple[int, ...]
    ignore_index: int
    image_dir: str
    label_dir: str
    image_ext: str
    label_ext: str
    recorded_labels: LabelRecord = LabelRecord()
    # What the model is asked for, when it differs from the label classes (PAS-20b: 59 prompts for
    # 21 label classes), and the label class each prompt's prediction is scored as.
    prompt_names: tuple[str, ...] | None = None
    prediction_labels: tuple[int, ...] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def prompts(self) -> tuple[str, ...]:
        """The class names the model predicts over: ``prompt_names``, else the label classes."""
        return self.prompt_names if self.prompt_names is not None else self.class_names

    @property
    def spec_hash(self) -> str:
        return self.spec.spec_hash


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    display_name: str
    domain: str
    split: str
    num_images: int
    class_names: tuple[str, ...]
    ignore_index: int
    license: str
    link: str
    data: DataLayout
    path: Path
    spec_hash: str
    background_index: int | None = None
    classes_of_interest: tuple[int, ...] | None = None
    subsets: tuple[SubsetSpec, ...] = ()
    prepare: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    label_dtype: str = "uint8"
    mess_name: str | None = None
    paper: str | None = None
    citation: str | None = None
    description: str | None = None
    notes: str | None = None
    labels: LabelRecord = LabelRecord()
    prompt_names: tuple[str, ...] | None = None
    prediction_labels: tuple[int, ...] | None = None

    @property
    def is_composite(self) -> bool:
        return bool(self.subsets)

    @property
    def num_classes(self) -> int:
        """Classes of the dataset; for a composite, of each subset (they are equal, validated)."""
        return len(self.subsets[0].class_names) if self.subsets else len(self.class_names)

    def eval_sets(self) -> list[EvalSet]:
        if not self.subsets:
            return [self._eval_set(self.name, None, self.class_names, self.classes_of_interest, self.data.label_dir,
                                   self.labels)]
        return [
            self._eval_set(f"{self.name}.{s.name}", s.name, s.class_names, s.classes_of_interest, s.label_dir, s.labels)
            for s in self.subsets
        ]

    def _eval_set(self, name, subset, class_names, coi, label_dir, labels) -> EvalSet:
        return EvalSet(
            name=name,
            spec=self,
            subset=subset,
            class_names=class_names,
            classes_of_interest=tuple(coi) if coi is not None else tuple(range(len(class_names))),
            ignore_index=self.ignore_index,
            image_dir=self.data.image_dir,
            label_dir=label_dir,
            image_ext=self.data.image_ext,
            label_ext=self.data.label_ext,
            recorded_labels=labels,
            prompt_names=self.prompt_names,
            prediction_labels=self.prediction_labels,
        )


@dataclass(frozen=True)
class Domain:
    name: str
    display_name: str
    datasets: tuple[str, ...]


@dataclass(frozen=True)
class Benchmark:
    """A benchmark: datasets grouped into domains, in table order; scores are unweighted means."""

    name: str
    display_name: str
    aggregation: str
    domains: tuple[Domain, ...]
    path: Path
    description: str | None = None
    # Datasets outside the benchmark (a user's, from --specs) shown after its domains, grouped by
    # their own domain; they never enter the benchmark's domain means or its Mean.
    extra_domains: tuple[Domain, ...] = ()

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(name for domain in self.domains for name in domain.datasets)

    @property
    def shown_domains(self) -> tuple[Domain, ...]:
        return self.domains + self.extra_domains

    @property
    def shown_datasets(self) -> tuple[str, ...]:
        return tuple(name for domain in self.shown_domains for name in domain.datasets)

    @property
    def averaged_domains(self) -> tuple[Domain, ...]:
        """The shown domains whose mean is a table column: all of them, except the only domain of a
        one-group benchmark (the in-domain suite), whose mean would repeat the Mean."""
        return (self.domains if len(self.domains) > 1 else ()) + self.extra_domains

    def with_extra_datasets(self, specs: Iterable["DatasetSpec"]) -> "Benchmark":
        """This benchmark showing `specs` (those not among its members) after its domains, one group per
        domain in order of name; a domain named like one of the benchmark's gets "(extra)" added."""
        own = {d.name for d in self.domains} | {d.display_name for d in self.domains}
        by_domain: dict[str, list[str]] = {}
        for spec in specs:
            if spec.name not in self.members:
                by_domain.setdefault(spec.domain, []).append(spec.name)
        extra = tuple(
            Domain(f"extra:{domain}", f"{domain} (extra)" if domain in own else domain, tuple(sorted(names)))
            for domain, names in sorted(by_domain.items())
        )
        return replace(self, extra_domains=extra)

    def domain_of(self, dataset: str) -> str:
        for domain in self.domains:
            if dataset in domain.datasets:
                return domain.name
        raise KeyError(dataset)


def builtin_specs_dir() -> Path:
    """The `dataset_specs/` folder shipped with the package."""
    return Path(str(resources.files("dataset_specs")))


def training_specs_dir() -> Path:
    """`dataset_specs/training/`: training sets (COCO-Stuff-171), kept out of the built-in folder's
    listing so the default spec list stays the benchmark's datasets. Load it as an extra folder."""
    return builtin_specs_dir() / "training"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML ({err}); fix the syntax") from None
    except UnicodeDecodeError as err:
        raise SpecError(f"{path}: not UTF-8 text ({err}); save the file as UTF-8") from None


def _check_fields(path: Path, where: str, table: dict[str, Any], schema: dict) -> None:
    for key in table:
        if key not in schema:
            allowed = ", ".join(schema)
            raise SpecError(f"{path}: unknown field '{where}{key}'; allowed fields are: {allowed}")
    for key, (types, required) in schema.items():
        if key not in table:
            if required:
                raise SpecError(f"{path}: missing required field '{where}{key}'")
            continue
        value = table[key]
        if not isinstance(value, types) or (int in types and isinstance(value, bool)):
            names = " or ".join(t.__name__ for t in types)
            raise SpecError(f"{path}: field '{where}{key}' must be of type {names}, got {value!r}")


def _repeated(values: list) -> list:
    """The values that occur more than once, sorted."""
    counts = Counter(values)
    return sorted(value for value, count in counts.items() if count > 1)


def _class_list(path: Path, where: str, values: list) -> tuple[str, ...]:
    if not values:
        raise SpecError(f"{path}: field '{where}' must list at least one class")
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise SpecError(f"{path}: field '{where}' must hold non-empty strings, got {value!r}")
    # "Sky", "sky " and "sky" are one prompt to a text encoder: compared case- and whitespace-insensitively.
    by_normal: dict[str, list[str]] = {}
    for value in values:
        by_normal.setdefault(" ".join(value.split()).casefold(), []).append(value)
    duplicates = [spellings for spellings in by_normal.values() if len(spellings) > 1]
    if duplicates:
        shown = "; ".join(" / ".join(repr(v) for v in spellings) for spellings in duplicates)
        raise SpecError(
            f"{path}: field '{where}' repeats class names ({shown}); class names must be unique "
            "ignoring case and spaces"
        )
    return tuple(values)


def _label_record(path: Path, where: str, table: dict[str, Any], num_classes: int) -> LabelRecord:
    """The recorded label fingerprint and pixel counts of one evaluation set, validated."""
    fingerprint = table.get("label_fingerprint")
    if fingerprint is not None and (len(fingerprint) != 64 or any(c not in "0123456789abcdef" for c in fingerprint)):
        raise SpecError(
            f"{path}: field '{where}label_fingerprint' must be 64 lowercase hex digits, got {fingerprint!r}; "
            "copy it from `bench datasets fingerprint`"
        )
    counts = table.get("class_pixel_counts")
    if counts is not None:
        if len(counts) != num_classes or any(not isinstance(c, int) or isinstance(c, bool) or c < 0 for c in counts):
            raise SpecError(
                f"{path}: field '{where}class_pixel_counts' must list {num_classes} pixel counts (integers >= 0), "
                f"one per class, got {counts!r}"
            )
        counts = tuple(counts)
    ignored = table.get("ignore_pixel_count")
    if ignored is not None and ignored < 0:
        raise SpecError(f"{path}: field '{where}ignore_pixel_count' must be >= 0, got {ignored}")
    return LabelRecord(fingerprint, counts, ignored)


def _indices(path: Path, where: str, values: list | None, num_classes: int) -> tuple[int, ...] | None:
    if values is None:
        return None
    for value in values:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < num_classes:
            raise SpecError(
                f"{path}: field '{where}' holds {value!r}, outside the class list (0..{num_classes - 1})"
            )
    return tuple(values)


def _normalise_ext(ext: str) -> str:
    """MESS writes extensions with or without the dot ("jpg", ".jpg") and as name suffixes ("_gt.png")."""
    return ext if ext.startswith((".", "_")) else "." + ext


def spec_hash(raw: dict[str, Any]) -> str:
    evaluated = {k: v for k, v in raw.items() if k not in _DOC_FIELDS}
    if isinstance(evaluated.get("subsets"), list):
        evaluated["subsets"] = [
            {k: v for k, v in subset.items() if k not in _LABEL_RECORD_FIELDS} if isinstance(subset, dict) else subset
            for subset in evaluated["subsets"]
        ]
    canonical = json.dumps(evaluated, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def parse_dataset_spec(path: Path, raw: dict[str, Any]) -> DatasetSpec:
    _check_fields(path, "", raw, _TOP_FIELDS)
    _check_fields(path, "data.", raw["data"], _DATA_FIELDS)
    _check_fields(path, "prepare.", raw.get("prepare", {}), _PREPARE_FIELDS)
    if raw["name"] != path.stem:
        raise SpecError(f"{path}: field 'name' is '{raw['name']}' but must equal the file stem '{path.stem}'")
    if raw["num_images"] < 0:
        raise SpecError(f"{path}: field 'num_images' must be >= 0, got {raw['num_images']}")
    label_dtype = raw.get("label_dtype", "uint8")
    if label_dtype not in LABEL_DTYPES:
        raise SpecError(f"{path}: field 'label_dtype' must be one of {LABEL_DTYPES}, got {label_dtype!r}")
    data = raw["data"]
    policy = data.get("images_without_labels", "error")
    if policy not in UNPAIRED_POLICIES:
        raise SpecError(f"{path}: field 'data.images_without_labels' must be one of {UNPAIRED_POLICIES}, got {policy!r}")
    for key in ("image_dir", "label_dir"):
        if key in data:
            _relative_dir(path, f"data.{key}", data[key])
    layout = DataLayout(
        image_dir=data["image_dir"],
        label_dir=data.get("label_dir"),
        image_ext=_normalise_ext(data["image_ext"]),
        label_ext=_normalise_ext(data["label_ext"]),
        images_without_labels=policy,
    )

    subsets = tuple(_parse_subset(path, i, table) for i, table in enumerate(raw.get("subsets", [])))
    if subsets:
        for key in ("class_names", "classes_of_interest", *_LABEL_RECORD_FIELDS):
            if key in raw:
                raise SpecError(f"{path}: field '{key}' must be given per [[subsets]] in a composite spec, not at the top")
        if layout.label_dir is not None:
            raise SpecError(f"{path}: field 'data.label_dir' must be given per [[subsets]] in a composite spec")
        names = [s.name for s in subsets]
        if _repeated(names):
            raise SpecError(f"{path}: field 'subsets.name' repeats a name in {names}")
        if len({len(s.class_names) for s in subsets}) != 1:
            counts = [len(s.class_names) for s in subsets]
            raise SpecError(f"{path}: field 'subsets.class_names' must have the same length in every subset, got {counts}")
        class_names: tuple[str, ...] = ()
        num_classes = len(subsets[0].class_names)
        coi = None
        labels = LabelRecord()
    else:
        if "class_names" not in raw:
            raise SpecError(f"{path}: missing required field 'class_names'")
        if layout.label_dir is None:
            raise SpecError(f"{path}: missing required field 'data.label_dir'")
        class_names = _class_list(path, "class_names", raw["class_names"])
        num_classes = len(class_names)
        coi = _indices(path, "classes_of_interest", raw.get("classes_of_interest"), num_classes)
        labels = _label_record(path, "", raw, num_classes)

    prompt_names, prediction_labels = _prompts(path, raw, num_classes, bool(subsets))

    background = raw.get("background_index")
    if background is not None:
        _indices(path, "background_index", [background], num_classes)
    ignore = raw["ignore_index"]
    if 0 <= ignore < num_classes:
        raise SpecError(f"{path}: field 'ignore_index' is {ignore}, which is a class index (0..{num_classes - 1})")
    if not 0 <= ignore <= 65535:
        raise SpecError(f"{path}: field 'ignore_index' is {ignore}; it must be a label value in 0..65535")
    if label_dtype == "uint8" and (num_classes > 255 or ignore > 255):
        raise SpecError(
            f"{path}: field 'label_dtype' is uint8, but {num_classes} classes / ignore {ignore} do not fit uint8 "
            "labels; set label_dtype = \"uint16\""
        )

    return DatasetSpec(
        name=raw["name"],
        display_name=raw["display_name"],
        domain=raw["domain"],
        split=raw["split"],
        num_images=raw["num_images"],
        class_names=class_names,
        ignore_index=ignore,
        license=raw["license"],
        link=raw["link"],
        data=layout,
        path=path,
        spec_hash=spec_hash(raw),
        background_index=background,
        classes_of_interest=coi,
        subsets=subsets,
        prepare=dict(raw.get("prepare", {})),
        label_dtype=label_dtype,
        mess_name=raw.get("mess_name"),
        paper=raw.get("paper"),
        citation=raw.get("citation"),
        description=raw.get("description"),
        notes=raw.get("notes"),
        labels=labels,
        prompt_names=prompt_names,
        prediction_labels=prediction_labels,
    )


def _prompts(path: Path, raw: dict[str, Any], num_classes: int, composite: bool):
    """``prompt_names`` and ``prediction_labels``, validated: both or neither, one label class per prompt."""
    if "prompt_names" not in raw and "prediction_labels" not in raw:
        return None, None
    if composite:
        raise SpecError(f"{path}: fields 'prompt_names' / 'prediction_labels' are not supported in a composite spec")
    if "prompt_names" not in raw or "prediction_labels" not in raw:
        raise SpecError(
            f"{path}: fields 'prompt_names' and 'prediction_labels' go together: give the prompts and, for each, "
            "the label class (index into class_names) its prediction is scored as"
        )
    prompts = _class_list(path, "prompt_names", raw["prompt_names"])
    mapping = _indices(path, "prediction_labels", raw["prediction_labels"], num_classes)
    if len(mapping) != len(prompts):
        raise SpecError(
            f"{path}: field 'prediction_labels' has {len(mapping)} entries but 'prompt_names' has {len(prompts)}; "
            "give one label class per prompt"
        )
    return prompts, mapping


def _relative_dir(path: Path, where: str, value: str) -> None:
    """Layout folders live under the data root: no absolute paths, no '..' escaping it."""
    parts = Path(value).parts
    if not value or Path(value).is_absolute() or ".." in parts:
        raise SpecError(f"{path}: field '{where}' is {value!r}; it must be a folder relative to the data root, without '..'")


def _parse_subset(path: Path, index: int, table: Any) -> SubsetSpec:
    where = f"subsets[{index}]."
    if not isinstance(table, dict):
        raise SpecError(f"{path}: field 'subsets[{index}]' must be a [[subsets]] table, got {table!r}")
    _check_fields(path, where, table, _SUBSET_FIELDS)
    _relative_dir(path, where + "label_dir", table["label_dir"])
    names = _class_list(path, where + "class_names", table["class_names"])
    coi = _indices(path, where + "classes_of_interest", table.get("classes_of_interest"), len(names))
    labels = _label_record(path, where, table, len(names))
    return SubsetSpec(table["name"], table["label_dir"], names, coi, table.get("mess_name"), labels)


def parse_benchmark(path: Path, raw: dict[str, Any]) -> Benchmark:
    _check_fields(path, "", raw, _BENCHMARK_FIELDS)
    if raw["aggregation"] != "mean":
        raise SpecError(f"{path}: field 'aggregation' must be \"mean\" (unweighted mean over datasets), got {raw['aggregation']!r}")
    domains = []
    for i, table in enumerate(raw["domains"]):
        if not isinstance(table, dict):
            raise SpecError(f"{path}: field 'domains[{i}]' must be a [[domains]] table, got {table!r}")
        _check_fields(path, f"domains[{i}].", table, _DOMAIN_FIELDS)
        if not all(isinstance(name, str) for name in table["datasets"]):
            raise SpecError(f"{path}: field 'domains[{i}].datasets' must list dataset names (strings)")
        domains.append(Domain(table["name"], table.get("display_name", table["name"]), tuple(table["datasets"])))
    members = [d for domain in domains for d in domain.datasets]
    repeated = _repeated(members)
    if repeated:
        raise SpecError(f"{path}: datasets {repeated} appear in more than one domain")
    return Benchmark(raw["name"], raw["display_name"], raw["aggregation"], tuple(domains), path, raw.get("description"))


def _spec_files(dirs: Iterable[Path]) -> list[Path]:
    """The TOML files of `dirs`; a folder named twice (e.g. `--specs` pointing at a built-in one) is read once."""
    files = []
    seen: set[Path] = set()
    for directory in dirs:
        directory = Path(directory)
        if not directory.is_dir():
            raise SpecError(f"{directory}: specs folder does not exist; pass an existing folder to --specs")
        if directory.resolve() in seen:
            continue
        seen.add(directory.resolve())
        files.extend(sorted(directory.glob("*.toml")))
    return files


def load_all(extra_dirs: Sequence[Path] = ()) -> tuple[dict[str, DatasetSpec], dict[str, Benchmark]]:
    """Every dataset spec and benchmark in the built-in folder plus `extra_dirs`, validated together."""
    specs: dict[str, DatasetSpec] = {}
    benchmarks: dict[str, Benchmark] = {}
    for path in _spec_files([builtin_specs_dir(), *map(user_path, extra_dirs)]):
        raw = _read_toml(path)
        if "domains" in raw:
            bench = parse_benchmark(path, raw)
            if bench.name in benchmarks:
                raise SpecError(f"{path}: duplicate benchmark name '{bench.name}' (also in {benchmarks[bench.name].path})")
            benchmarks[bench.name] = bench
            continue
        spec = parse_dataset_spec(path, raw)
        if spec.name in specs:
            raise SpecError(f"{path}: field 'name' is '{spec.name}', a duplicate of {specs[spec.name].path}; rename one")
        specs[spec.name] = spec
    for bench in benchmarks.values():
        for name in bench.members:
            if name not in specs:
                raise SpecError(f"{bench.path}: field 'domains.datasets' lists '{name}', which has no spec")
            if specs[name].domain != bench.domain_of(name):
                raise SpecError(
                    f"{specs[name].path}: field 'domain' is '{specs[name].domain}' but {bench.path.name} "
                    f"puts it in '{bench.domain_of(name)}'"
                )
    return specs, benchmarks


def load_specs(extra_dirs: Sequence[Path] = ()) -> dict[str, DatasetSpec]:
    """Dataset specs by name: MESS datasets in benchmark order first, then the members of the other
    benchmarks (by benchmark name, each in its order), then the others by name."""
    specs, benchmarks = load_all(extra_dirs)
    order = list(dict.fromkeys(name for bench in suites_in_order(benchmarks) for name in bench.members))
    ordered = {name: specs[name] for name in order}
    ordered.update({name: specs[name] for name in sorted(specs) if name not in ordered})
    return ordered


def load_benchmark(name: str = "mess", extra_dirs: Sequence[Path] = ()) -> Benchmark:
    """The benchmark (suite) called `name`: a built-in one or one in `extra_dirs`."""
    return find_suite(name, load_all(extra_dirs)[1])


def find_suite(name: str, benchmarks: Mapping[str, Benchmark]) -> Benchmark:
    """The suite (benchmark) called `name` among `benchmarks`, or one line naming the known ones."""
    if name not in benchmarks:
        raise SpecError(f"no suite named '{name}'; known suites: {', '.join(sorted(benchmarks))} "
                        "(a benchmark file in --specs DIR adds one)")
    return benchmarks[name]


def suites_in_order(benchmarks: Mapping[str, Benchmark]) -> list[Benchmark]:
    """The suites MESS first, then the others by name: the order of `load_specs` and of `bench run`'s tables."""
    return sorted(benchmarks.values(), key=lambda suite: (suite.name != "mess", suite.name))


def other_suites(benchmark: Benchmark, benchmarks: Mapping[str, Benchmark]) -> dict[str, str]:
    """Dataset name -> the suite it belongs to, for the datasets of every suite but `benchmark` that are
    not also among its members (in each suite's order): their results belong to that suite's table,
    not to this one's extras."""
    out: dict[str, str] = {}
    for suite in benchmarks.values():
        if suite.name != benchmark.name:
            out.update({name: suite.name for name in suite.members if name not in benchmark.members and name not in out})
    return out


def get_spec(name: str, extra_dirs: Sequence[Path] = ()) -> DatasetSpec:
    specs = load_specs(extra_dirs)
    if name not in specs:
        raise SpecError(f"no dataset spec named '{name}'; see `bench datasets list` (add yours with --specs DIR)")
    return specs[name]
