"""The one Finding: identity across cycles, the rule JSON record, the error test."""

from __future__ import annotations

import dataclasses

import pytest

from cvat_ext.qa import Action, Finding, Severity, Source, has_errors


def _finding(**changes: object) -> Finding:
    base = Finding(Source.RULE, "tiny", Severity.ERROR, 4, (10.0, 20.0, 30.0, 40.0), "2 px", Action.OPEN_ISSUE, 7)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "same"),
    [
        ({"message": "3 px", "severity": Severity.WARNING, "action": Action.NONE, "object_id": 9}, True),
        ({"xyxy": (9.0, 17.0, 31.0, 39.0)}, True),  # a re-scored, barely moved box keeps its issue
        ({"xyxy": (30.0, 20.0, 50.0, 40.0)}, False),
        ({"job_id": 8}, False),
        ({"frame": 5}, False),
        ({"code": "huge"}, False),
        ({"label": "car"}, False),
        ({"source": Source.CONSENSUS}, False),
    ],
)
def test_fingerprint_is_the_problem_not_its_wording(changes: dict[str, object], same: bool) -> None:
    fp = _finding().fingerprint
    assert len(fp) == 16 and (_finding(**changes).fingerprint == fp) is same


def test_rule_record_keeps_the_published_keys() -> None:
    record = _finding(rule_kind="size", track_id=3).rule_record()
    assert list(record) == [
        "rule_id", "kind", "severity", "action", "job_id", "frame", "object_id", "track_id", "label", "annotator",
        "message", "position",
    ]  # fmt: skip
    assert (record["rule_id"], record["kind"], record["severity"]) == ("tiny", "size", "error")
    assert record["action"] == "open_issue"
    assert record["position"] == [10.0, 20.0, 30.0, 40.0]


def test_has_errors_and_text() -> None:
    assert has_errors([_finding(severity=Severity.WARNING), _finding()])
    assert not has_errors([_finding(severity=Severity.WARNING)])
    assert str(_finding(annotator="ann1")) == "job 7 frame 4: [error tiny] 2 px by 'ann1'"
    assert _finding().issue_message() == "[tiny] 2 px"
