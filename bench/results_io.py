"""Bench figures as JSON: every bench script records what it printed in ``bench/results/``.

Format of ``bench/results/<script_stem>[-<variant>].json`` (``bench/figures.py`` turns all of them
into ``bench/FIGURES.md``)::

    {"bench": "<script_stem>",
     "command": "python3 bench/<script_stem>.py <arguments as run>",
     "figures": [{"name": str, "value": number, "unit": str, "target": str | null, "met": bool | null}],
     "machine": {"cpus": int, "python": str, "platform": str, "measured": "YYYY-MM-DD", ...},
     "note": str}                                    # optional: smaller run, where it was measured

``variant`` separates runs of one script that are kept side by side (``functions_sam-cuda``:
the same bench on a GPU). Values are plain numbers in the named unit; a figure without a target
has ``target`` and ``met`` null.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Figure:
    """One measured figure: ``value`` in ``unit``; ``target`` as text (``"< 50 ms"``), ``met`` if judged."""

    name: str
    value: float
    unit: str
    target: str | None = None
    met: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.value, int | float) or isinstance(self.value, bool) or not math.isfinite(self.value):
            raise ValueError(f"figure {self.name!r}: value {self.value!r} is not a finite number")
        if self.met is not None and self.target is None:
            raise ValueError(f"figure {self.name!r}: 'met' given without a target")


def machine_facts(**extra: str | int | float) -> dict[str, Any]:
    """CPU count, Python, platform and today's UTC date, plus ``extra`` (device, torch version...)."""
    facts: dict[str, Any] = {
        "cpus": os.cpu_count() or 0,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "measured": datetime.now(UTC).strftime("%Y-%m-%d"),
    }
    facts.update(extra)
    return facts


@dataclass
class BenchResults:
    """Collects one run's figures; :meth:`write` saves them next to the other benches' results.

    ``script`` is the bench's ``__file__``; the command recorded is that script with the
    arguments it was run with (``sys.argv``).
    """

    script: str
    variant: str | None = None
    note: str | None = None
    figures: list[Figure] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=machine_facts)

    def add(self, name: str, value: float, unit: str, target: str | None = None, met: bool | None = None) -> None:
        """Record a figure; ``value`` is rounded to 6 significant digits (more is noise here)."""
        self.figures.append(Figure(name, float(f"{value:.6g}"), unit, target, met))

    def add_all(self, figures: Iterable[Mapping[str, Any]]) -> None:
        """Record figures given as ``{"name", "value", "unit", "target"?, "met"?}`` mappings."""
        for f in figures:
            self.add(f["name"], f["value"], f["unit"], f.get("target"), f.get("met"))

    @property
    def stem(self) -> str:
        return Path(self.script).stem

    @property
    def command(self) -> str:
        return " ".join(["python3", f"bench/{Path(self.script).name}", *map(shlex.quote, sys.argv[1:])])

    def write(self, results_dir: Path = RESULTS_DIR) -> Path:
        """Write ``<stem>[-<variant>].json`` and return its path (regenerate FIGURES.md after)."""
        name = self.stem if self.variant is None else f"{self.stem}-{self.variant}"
        path = results_dir / f"{name}.json"
        body: dict[str, Any] = {
            "bench": self.stem,
            "command": self.command,
            "figures": [asdict(f) for f in self.figures],
            "machine": self.machine,
        }
        if self.note:
            body["note"] = self.note
        results_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"figures written to {path} (then: python3 bench/figures.py)")
        return path
