"""Validation rules: declarative YAML rule packs (``qa_rules/``) checked against job annotations.

Public API (what the sidecar and the CLI use)::

    pack = load_packs(["qa_rules/driving.yaml"])           # RulePack (raises RuleFileError)
    findings = check_job(ann, labels, meta, pack, job_id=136, annotator="ann1",
                         project_id=24, task_id=52)        # list[Finding], sorted by frame
    iter_findings(...)                                     # same, lazily
    rule_file_json_schema()                                # JSON Schema of a rule file

Modules: ``schema`` (the file format), ``loader`` (YAML, includes, overrides, errors with lines),
``frame_batch`` (columns over a batch of frames), ``kinds`` (one module per family of checkers), ``engine``.
Findings are :class:`cvat_ext.qa.findings.Finding` (source ``rule``, ``code`` = the rule id).
"""

from cvat_ext.qa.findings import Action, Finding, Severity, has_errors
from cvat_ext.rules.engine import check_job, iter_findings
from cvat_ext.rules.loader import RulePack, RulePackInvalid, lint_files, load_pack, load_packs
from cvat_ext.rules.schema import rule_file_json_schema

__all__ = [
    "Action",
    "Finding",
    "RulePack",
    "RulePackInvalid",
    "Severity",
    "check_job",
    "has_errors",
    "iter_findings",
    "lint_files",
    "load_pack",
    "load_packs",
    "rule_file_json_schema",
]
