"""Published reference tables: what a label-free ranking is compared with instead of (or beside)
the supervised jobs.

A table maps a generator's canonical structure string (``Backbone.structure``: NAS-Bench-Macro's
8-digit string, NAS-Bench-201's cell string, ...) to an accuracy. Two formats, both plain text:

* **CSV** with a header: a key column (``structure``, or ``arch`` / ``arch_str`` / ``key``) and an
  accuracy column (``accuracy``, or ``mean_acc`` / ``test_acc`` / ``acc``); ``key_column`` /
  ``value_column`` name others.
* **JSON**: an object ``{key: number}`` or ``{key: {field: number, ...}}`` -- NAS-Bench-Macro's own
  layout (``{"02012100": {"mean_acc": 89.2, "test_acc": [...], ...}}``, field ``mean_acc``).

Accuracies given in percent (any value above 1) are stored as fractions, like every accuracy in
the results store. Pickles and other formats are refused without being read as anything but
bytes. Every problem (missing file, unknown format, missing column, an empty / non-finite / non-
numeric value, a duplicate key, a key the generator cannot parse, a candidate absent from the
table) is one :class:`~unnas.errors.UserError` raised before any job runs.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from unnas.errors import UserError
from unnas.spec import ArchSpec, get_generator

KEY_COLUMNS = ("structure", "arch", "arch_str", "key")
VALUE_COLUMNS = ("accuracy", "mean_acc", "test_acc", "acc")
FIELD = "--reference"


@dataclass(frozen=True)
class Reference:
    """A loaded table: ``values[structure] -> accuracy`` (fraction)."""

    path: str
    values: Mapping[str, float]
    value_name: str  # the column / field the accuracies came from

    def __len__(self) -> int:
        return len(self.values)

    def canonical(self, generator: str) -> "Reference":
        """The same table with keys in ``generator``'s canonical form (``Generator.canonical`` when it
        has one); a key it cannot parse, or two keys naming one network, is an error."""
        gen = get_generator(generator)
        canon = getattr(gen, "canonical", None)
        if canon is None:
            return self
        out: dict[str, float] = {}
        for key, v in self.values.items():
            try:
                c = canon(key, generator)
            except UserError as e:
                raise UserError(FIELD, self.path, f"keys that generator {generator} can parse",
                                message=f"malformed key {key!r} ({e})") from None
            if c in out:
                raise UserError(FIELD, self.path, "one row per network", message=f"key {key!r} names the same network "
                                                                                 f"as another key ({c!r})")
            out[c] = v
        return Reference(self.path, out, self.value_name)

    def lookup(self, specs: Iterable[ArchSpec], in_channels: int = 3) -> dict[str, float]:
        """``arch_id -> accuracy`` for every spec; a spec whose structure is absent is an error naming it."""
        out, missing = {}, []
        for spec in specs:
            s = structure_of(spec, in_channels)
            if s in self.values:
                out[spec.arch_id] = self.values[s]
            else:
                missing.append(f"{spec.arch_id} ({s})")
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise UserError(FIELD, self.path, "a table holding every candidate",
                            message=f"{len(missing)} candidate(s) absent from the table: "
                                    f"{', '.join(missing[:3])}{more}")
        return out


def structure_of(spec: ArchSpec, in_channels: int = 3) -> str:
    """The canonical structure string of a spec (its backbone's ``structure``), built on ``meta``
    (or given directly by the generator's ``structure(params, seed)`` when it has one)."""
    from unnas.generators.complexity import build_meta

    gen = get_generator(spec.generator)
    if hasattr(gen, "structure"):
        return gen.structure(gen.resolve(spec.params), spec.seed)
    net = build_meta(spec, in_channels)
    s = getattr(net, "structure", None)
    if not isinstance(s, str) or not s:
        raise UserError(FIELD, spec.generator, "generators whose networks report a structure string",
                        message=f"generator {spec.generator} gives no structure string to match a table with")
    return s


def load_reference(path: str | Path, key_column: str = "", value_column: str = "") -> Reference:
    """Read a CSV or JSON table (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(FIELD, str(path), "an existing CSV or JSON file", message="file not found")
    raw = p.read_bytes()
    if raw[:1] == b"\x80" or p.suffix.lower() in (".pkl", ".pickle", ".pth", ".pt"):
        raise UserError(FIELD, str(path), "CSV or JSON", message="pickle files are refused (they can run code); "
                                                                 "export the table as CSV or JSON")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(FIELD, str(path), "a UTF-8 CSV or JSON file", message="not text") from None
    stripped = text.lstrip()
    if p.suffix.lower() == ".json" or stripped[:1] in ("{", "["):
        values, name = _from_json(text, str(path), value_column)
    else:
        values, name = _from_csv(text, str(path), key_column, value_column)
    if not values:
        raise UserError(FIELD, str(path), "a table with at least one row", message="empty table")
    scale = 100.0 if max(values.values()) > 1.0 else 1.0
    return Reference(str(path), {k: v / scale for k, v in values.items()}, name)


def _number(v: Any, where: str, path: str) -> float:
    if isinstance(v, bool) or v is None or v == "":
        raise UserError(FIELD, path, "a finite number per row", message=f"{where}: missing value")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise UserError(FIELD, path, "a finite number per row", message=f"{where}: not a number ({v!r})") from None
    if not math.isfinite(x):
        raise UserError(FIELD, path, "a finite number per row", message=f"{where}: {x}")
    return x


def _pick(names: Iterable[str], wanted: str, defaults: tuple[str, ...], what: str, path: str) -> str:
    names = list(names)
    if wanted:
        if wanted not in names:
            raise UserError(FIELD, path, names, message=f"no {what} column {wanted!r}")
        return wanted
    for d in defaults:
        if d in names:
            return d
    raise UserError(FIELD, path, f"{what} column named one of {', '.join(defaults)} (or name it explicitly)",
                    message=f"no {what} column among {names}")


def _from_csv(text: str, path: str, key_column: str, value_column: str) -> tuple[dict[str, float], str]:
    try:
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames or []
        rows = list(reader)
    except csv.Error as e:
        raise UserError(FIELD, path, "a CSV file with a header", message=f"not valid CSV ({e})") from None
    header = [h.strip() for h in header]
    kc = _pick(header, key_column, KEY_COLUMNS, "structure", path)
    vc = _pick(header, value_column, VALUE_COLUMNS, "accuracy", path)
    out: dict[str, float] = {}
    for i, row in enumerate(rows, start=2):
        row = {(k or "").strip(): v for k, v in row.items()}
        key = (row.get(kc) or "").strip()
        if not key:
            raise UserError(FIELD, path, "a structure string per row", message=f"line {i}: empty {kc}")
        if key in out:
            raise UserError(FIELD, path, "one row per network", message=f"line {i}: duplicate key {key!r}")
        out[key] = _number((row.get(vc) or "").strip(), f"line {i} ({key}) {vc}", path)
    return out, vc


def _from_json(text: str, path: str, value_column: str) -> tuple[dict[str, float], str]:
    def no_duplicates(pairs):
        seen = {}
        for k, v in pairs:
            if k in seen:
                raise UserError(FIELD, path, "one entry per network", message=f"duplicate key {k!r}")
            seen[k] = v
        return seen

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as e:
        raise UserError(FIELD, path, "a JSON object", message=f"not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(data, dict):
        raise UserError(FIELD, path, "a JSON object {structure: accuracy or {field: accuracy}}",
                        message=f"top level is a {type(data).__name__}")
    out: dict[str, float] = {}
    name = value_column or ""
    for key, entry in data.items():
        if isinstance(entry, dict):
            field = value_column or next((c for c in VALUE_COLUMNS if c in entry), "")
            if not field or field not in entry:
                raise UserError(FIELD, path, f"entries with a field {value_column or ' / '.join(VALUE_COLUMNS)}",
                                message=f"entry {key!r} has no accuracy field (fields: {sorted(entry)})")
            v = entry[field]
            if isinstance(v, list):  # per-seed accuracies: their mean
                v = sum(_number(x, f"entry {key!r} {field}", path) for x in v) / len(v) if v else None
            name = name or field
            out[key] = _number(v, f"entry {key!r} {field}", path)
        else:
            out[key] = _number(entry, f"entry {key!r}", path)
            name = name or "value"
    return out, name
