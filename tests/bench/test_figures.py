"""bench/FIGURES.md is generated from bench/results/*.json and can never go stale silently.

``bench/figures.py --check`` regenerates the Markdown and compares; these tests run it on the
repository's files and check the generator and the results writer on small tables of their own.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import figures  # noqa: E402
from results_io import BenchResults  # noqa: E402


def _figure(**over: Any) -> dict[str, Any]:
    return {"name": "hit", "value": 2.5, "unit": "ms", "target": "< 50", "met": True} | over


def _write(folder: Path, name: str, body: dict[str, Any]) -> Path:
    path = folder / name
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def test_repository_figures_are_current() -> None:
    assert figures.main(["--check"]) == 0, "bench/FIGURES.md is stale: run python3 bench/figures.py"


def test_every_results_file_is_listed() -> None:
    text = (BENCH / "FIGURES.md").read_text(encoding="utf-8")
    for path in (BENCH / "results").glob("*.json"):
        assert f"\n## {path.stem}\n" in text


def test_every_bench_script_writes_results() -> None:
    # a bench that prints figures without writing its JSON would be missing from FIGURES.md
    helpers = {"results_io.py", "figures.py", "consensus_generator.py", "annotator_truth.py"}
    scripts = [p for p in BENCH.glob("*.py") if p.name not in helpers]
    assert scripts
    for script in scripts:
        source = script.read_text(encoding="utf-8")
        assert "from results_io import BenchResults" in source, script.name
        assert re.search(r"\.write\(\)", source), script.name


def test_check_fails_when_a_value_changes(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    _write(results, "demo.json", {"bench": "demo", "command": "python3 bench/demo.py", "figures": [_figure()]})
    out = tmp_path / "FIGURES.md"
    assert figures.main(["--results", str(results), "--out", str(out)]) == 0
    assert figures.main(["--check", "--results", str(results), "--out", str(out)]) == 0
    _write(results, "demo.json", {"bench": "demo", "command": "python3 bench/demo.py", "figures": [_figure(value=3)]})
    assert figures.main(["--check", "--results", str(results), "--out", str(out)]) == 1
    _write(results, "demo.json", {"bench": "demo", "command": "python3 bench/demo.py", "figures": [_figure()]})
    _write(results, "other.json", {"bench": "other", "command": "python3 bench/other.py", "figures": [_figure()]})
    assert figures.main(["--check", "--results", str(results), "--out", str(out)]) == 1


def test_render_table(tmp_path: Path) -> None:
    body = {
        "bench": "demo",
        "command": "python3 bench/demo.py --frames 10",
        "figures": [_figure(), _figure(name="a | b", value=12345.0, unit="frames/s", target=None, met=None),
                    _figure(name="slow", value=0.012344, met=False)],
        "machine": {"cpus": 2, "measured": "2026-12-07"},
        "note": "smaller run",
    }
    path = _write(tmp_path, "demo-cuda.json", body)
    text = figures.render([(path, figures.load_results(path))])
    assert "## demo-cuda\n" in text
    assert "`python3 bench/demo.py --frames 10`" in text
    assert "Machine: cpus 2; measured 2026-12-07." in text
    assert "| hit | 2.5 | ms | < 50 | yes |" in text
    assert "| a \\| b | 12,345 | frames/s |  |  |" in text
    assert "| slow | 0.01234 | ms | < 50 | **no** |" in text
    assert "| [`demo-cuda.json`](#demo-cuda) | `demo` | 3 | 1 of 2 |" in text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"command": "c", "figures": [_figure()]}, "'bench' must be a non-empty string"),
        ({"bench": "demo", "figures": [_figure()]}, "'command' must be a non-empty string"),
        ({"bench": "other", "command": "c", "figures": [_figure()]}, "does not match the file name"),
        ({"bench": "demo", "command": "c", "figures": []}, "'figures' must be a non-empty list"),
        ({"bench": "demo", "command": "c", "figures": [_figure(value="1")]}, "value: '1' is not int or float"),
        ({"bench": "demo", "command": "c", "figures": [_figure(value=True)]}, "figures[0].value: True"),
        ({"bench": "demo", "command": "c", "figures": [_figure(met="yes")]}, "figures[0].met"),
        ({"bench": "demo", "command": "c", "figures": [{"name": "x", "value": 1}]}, "missing met, target, unit"),
        ({"bench": "demo", "command": "c", "figures": [_figure(extra=1)]}, "figures[0]: unknown key extra"),
        ({"bench": "demo", "command": "c", "figures": [_figure()], "machine": "h100"}, "'machine' must be an object"),
        ([1, 2], "expected an object at the top"),
    ],
)
def test_bad_results_name_file_and_field(tmp_path: Path, body: Any, message: str) -> None:
    path = _write(tmp_path, "demo.json", body)
    with pytest.raises(figures.FiguresError) as err:
        figures.load_results(path)
    assert str(err.value).startswith("demo.json: ")
    assert message in str(err.value)


def test_bad_results_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "demo.json").write_text("{not json", encoding="utf-8")
    assert figures.main(["--results", str(tmp_path), "--out", str(tmp_path / "F.md")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "demo.json: not readable as JSON" in err
    assert not (tmp_path / "F.md").exists()


def test_results_writer_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["bench/demo.py", "--frames", "10 20"])
    results = BenchResults("/somewhere/bench/demo.py", variant="cuda", note="smaller run")
    results.add("hit", 2.123456789, "ms", "< 50", True)
    results.add("rate", 12345, "frames/s")
    path = results.write(tmp_path)
    assert path.name == "demo-cuda.json"
    body = figures.load_results(path)
    assert body["command"] == "python3 bench/demo.py --frames '10 20'"
    assert [f["value"] for f in body["figures"]] == [2.12346, 12345]
    assert body["machine"]["cpus"] >= 1 and re.fullmatch(r"\d{4}-\d\d-\d\d", body["machine"]["measured"])


@pytest.mark.parametrize(
    ("value", "met", "target"),
    [(float("nan"), None, None), (float("inf"), None, None), (1.0, True, None)],
)
def test_results_writer_rejects(value: float, met: bool | None, target: str | None) -> None:
    results = BenchResults("bench/demo.py")
    with pytest.raises(ValueError, match="figure 'x'"):
        results.add("x", value, "ms", target, met)
