"""Load rule packs: YAML with line numbers, ``include`` and ``overrides``, errors naming file:line and rule.

Resolution order of one file: its ``include`` files first (each resolved the same way, in order; a
later one replaces an earlier rule with the same id), then its own ``rules`` (same id = replace
the included rule in place), then its ``overrides`` (a partial patch of an existing rule, deep
merged and re-validated). ``actions`` come from the file itself, else from the last include that
sets them, else the defaults. :func:`load_packs` merges several files the same way.

Every problem becomes a :class:`RuleFileError` (``path``, ``line``, ``rule_id``); a file with
several problems raises :class:`RulePackInvalid` listing all of them, so ``cvat-ext rules lint``
shows everything in one run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cvat_ext.annotations.model import LabelSet
from cvat_ext.errors import RuleFileError
from cvat_ext.inputs.text import read_utf8
from cvat_ext.rules.schema import RULE_ADAPTER, RULE_MODELS, ActionsBySeverity, Rule, RuleFile

logger = logging.getLogger(__name__)


class RulePackInvalid(RuleFileError):
    """Several problems in rule files; ``errors`` holds each one (the first also sets path/line/rule_id)."""

    def __init__(self, errors: Sequence[RuleFileError]) -> None:
        first = errors[0]
        Exception.__init__(self, "\n".join(str(e) for e in errors))
        self.path, self.line, self.rule_id = first.path, first.line, first.rule_id
        self.errors = tuple(errors)


# ----------------------------------------------------------------------------------------------
# YAML with line numbers


class LineDict(dict[Any, Any]):
    """A YAML mapping that remembers its own line and each key's line (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]


class LineList(list[Any]):
    """A YAML sequence that remembers its own line and each item's line (1-based)."""

    line: int = 0
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LineDict:
    explicit = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
    loader.flatten_mapping(node)  # merged (``<<: *anchor``) pairs first, then the explicit ones
    first_explicit = len(node.value) - explicit
    data = LineDict()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    explicit_keys: set[Any] = set()
    for position, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise yaml.constructor.ConstructorError(None, None, "mapping keys must be scalars", key_node.start_mark)
        if position >= first_explicit:
            # a typo'd repeat is an error; a key overriding a merged anchor is YAML's normal use
            if key in explicit_keys:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            explicit_keys.add(key)
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = key_node.start_mark.line + 1
    return data


def _construct_sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> LineList:
    data = LineList(loader.construct_object(child, deep=True) for child in node.value)
    data.line = node.start_mark.line + 1
    data.item_lines = [child.start_mark.line + 1 for child in node.value]
    return data


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def parse_yaml(text: str, path: str) -> Any:
    """YAML text -> LineDict/LineList/scalars; syntax errors become RuleFileError with the line."""
    try:
        return yaml.load(text, Loader=_LineLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise RuleFileError(f"YAML: {exc.problem or exc.context}", path=path, line=line) from None
    except yaml.YAMLError as exc:
        raise RuleFileError(f"YAML: {exc}", path=path) from None


def line_of(raw: Any, loc: Iterable[Any]) -> int | None:
    """The line of the deepest element of ``loc`` found in the line-aware ``raw`` data.

    Elements that do not index ``raw`` (pydantic's union tags like ``'size'``) are skipped.
    """
    line = getattr(raw, "line", None)
    current = raw
    for part in loc:
        if isinstance(current, LineDict) and part in current:
            line = current.key_lines.get(part, line)
            current = current[part]
        elif isinstance(current, LineList) and isinstance(part, int) and 0 <= part < len(current):
            line = current.item_lines[part]
            current = current[part]
    return line


def _format_loc(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if not (isinstance(p, str) and p in _KIND_TAGS)]
    return ".".join(parts)


_KIND_TAGS = frozenset(RULE_MODELS)


def _validation_errors(
    exc: ValidationError,
    raw: Any,
    path: str,
    *,
    rule_id_of: Callable[[tuple[Any, ...]], str | None],
    prefix: str = "",
    default_line: int | None = None,
) -> list[RuleFileError]:
    found = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        rule_id = rule_id_of(loc)
        # the rule id is printed already: show the field path inside the rule
        shown_loc = loc[2:] if rule_id is not None and loc[:1] == ("rules",) else loc
        where = _format_loc(shown_loc)
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see `cvat-ext rules schema`)"
        text = f"{prefix}{where}: {message}" if where else f"{prefix}{message}"
        line = line_of(raw, loc) if raw is not None else None
        found.append(RuleFileError(text, path=path, line=line or default_line, rule_id=rule_id))
    return found


# ----------------------------------------------------------------------------------------------
# packs


@dataclass(frozen=True)
class RulePack:
    """A resolved pack: rules in order (unique ids), actions per severity, where each rule came from."""

    name: str
    rules: tuple[Rule, ...]
    actions: ActionsBySeverity = field(default_factory=ActionsBySeverity)
    sources: tuple[str, ...] = ()
    origins: Mapping[str, str] = field(default_factory=dict)  # rule id -> "path:line"

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.rules)


@dataclass
class _Resolved:
    rules: dict[str, Rule] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    actions: ActionsBySeverity | None = None
    sources: list[str] = field(default_factory=list)

    def absorb(self, other: _Resolved) -> None:
        self.rules.update(other.rules)
        self.origins.update(other.origins)
        if other.actions is not None:
            self.actions = other.actions
        self.sources.extend(s for s in other.sources if s not in self.sources)


def _constant(rule_id: str) -> Callable[[tuple[Any, ...]], str | None]:
    return lambda loc: rule_id


def _deep_merge(base: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _rule_id_in(raw: Any, loc: Sequence[Any]) -> str | None:
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(raw, LineDict):
        rules = raw.get("rules")
        if isinstance(rules, list) and isinstance(loc[1], int) and loc[1] < len(rules):
            item = rules[loc[1]]
            if isinstance(item, Mapping) and isinstance(item.get("id"), str):
                return str(item["id"])
    if len(loc) >= 2 and loc[0] == "overrides":
        return str(loc[1])
    return None


def _load_file(path: Path, stack: tuple[Path, ...]) -> _Resolved:
    shown = str(path)
    try:
        text = read_utf8(path)
    except OSError as exc:
        raise RuleFileError(f"cannot read rule file: {exc.strerror or exc}", path=shown) from None
    except ValueError as exc:  # not UTF-8: the message names the file, line and column
        raise RuleFileError(str(exc)) from None
    raw = parse_yaml(text, shown)
    if raw is None:
        raw = LineDict()
        raw.key_lines = {}
    if not isinstance(raw, LineDict):
        raise RuleFileError(
            "a rule file is a mapping with `rules:` (and optionally include/overrides)", path=shown, line=1
        )

    errors: list[RuleFileError] = []
    try:
        spec = RuleFile.model_validate(raw)
    except ValidationError as exc:
        raise RulePackInvalid(
            _validation_errors(exc, raw, shown, rule_id_of=lambda loc: _rule_id_in(raw, loc))
        ) from None

    resolved = _Resolved(sources=[shown])
    # 1. includes, in order
    for i, include in enumerate(spec.include):
        shown_target = Path(os.path.normpath(path.parent / include))
        target = shown_target.resolve()
        line = line_of(raw, ("include", i))
        if target in stack:
            chain = " -> ".join(str(p) for p in (*stack, target))
            errors.append(RuleFileError(f"include cycle: {chain}", path=shown, line=line))
            continue
        if not target.is_file():
            errors.append(RuleFileError(f"included file {include!r} not found ({target})", path=shown, line=line))
            continue
        resolved.absorb(_load_file(shown_target, (*stack, target)))

    # 2. own rules: unique ids, replace included ones in place
    seen: dict[str, int] = {}
    for i, rule in enumerate(spec.rules):
        line = line_of(raw, ("rules", i))
        if rule.id in seen:
            errors.append(
                RuleFileError(
                    f"duplicate rule id (first at line {seen[rule.id]})", path=shown, line=line, rule_id=rule.id
                )
            )
            continue
        seen[rule.id] = line or 0
        resolved.rules[rule.id] = rule
        resolved.origins[rule.id] = f"{shown}:{line}"

    # 3. overrides of included (or own) rules by id
    overrides_raw = raw.get("overrides")
    if not isinstance(overrides_raw, LineDict):
        overrides_raw = LineDict()
    for rule_id, patch in spec.overrides.items():
        line = line_of(raw, ("overrides", rule_id))
        base = resolved.rules.get(rule_id)
        if base is None:
            errors.append(RuleFileError("override of an unknown rule id", path=shown, line=line, rule_id=rule_id))
            continue
        changed = {k for k in ("id", "kind") if k in patch and patch[k] != getattr(base, k)}
        if changed:
            errors.append(
                RuleFileError(
                    f"an override cannot change {', '.join(sorted(changed))}", path=shown, line=line, rule_id=rule_id
                )
            )
            continue
        merged = _deep_merge(base.model_dump(exclude_unset=True), patch)
        merged["kind"] = base.kind
        try:
            resolved.rules[rule_id] = RULE_ADAPTER.validate_python(merged)
        except ValidationError as exc:
            errors.extend(
                _validation_errors(
                    exc,
                    overrides_raw.get(rule_id),
                    shown,
                    rule_id_of=_constant(rule_id),
                    prefix="override ",
                    default_line=line,
                )
            )
            continue
        resolved.origins[rule_id] = f"{resolved.origins[rule_id]} (overridden at {shown}:{line})"

    if spec.actions is not None:
        resolved.actions = spec.actions
    if errors:
        raise RulePackInvalid(errors)
    return resolved


def load_pack(path: str | Path) -> RulePack:
    """Load one rule file with its includes and overrides."""
    return load_packs([path])


def load_packs(paths: Sequence[str | Path]) -> RulePack:
    """Load and merge rule files in order (a later file's rule replaces an earlier one with its id).

    Raises :class:`RuleFileError` (or :class:`RulePackInvalid` with several) naming file, line, rule.
    """
    if not paths:
        raise RuleFileError("no rule files given")
    total = _Resolved()
    for p in paths:
        target = Path(p).resolve()
        part = _load_file(Path(p), (target,))
        total.absorb(part)
    name = ", ".join(Path(p).stem for p in paths)
    logger.debug("rule pack %s: %d rules from %s", name, len(total.rules), total.sources)
    return RulePack(
        name=name,
        rules=tuple(total.rules.values()),
        actions=total.actions or ActionsBySeverity(),
        sources=tuple(total.sources),
        origins=dict(total.origins),
    )


def lint_files(paths: Iterable[str | Path]) -> list[RuleFileError]:
    """Every problem in each file (empty list = all files fine)."""
    problems: dict[str, RuleFileError] = {}  # by text: a file included by several others is reported once
    for p in paths:
        try:
            load_packs([p])
        except RulePackInvalid as exc:
            problems.update((str(e), e) for e in exc.errors)
        except RuleFileError as exc:
            problems[str(exc)] = exc
    return list(problems.values())


def label_names_used(rule: Rule) -> dict[str, tuple[str, ...]]:
    """Field -> label names a rule refers to (scope labels, partner/box labels, frame tags)."""
    used: dict[str, tuple[str, ...]] = {}
    if rule.scope.labels:
        used["scope.labels"] = rule.scope.labels
    for field_name in ("other_labels", "box_labels", "tags"):
        names = getattr(rule, field_name, None)
        if names:
            used[field_name] = tuple(names)
    return used


def check_label_names(pack: RulePack, labels: LabelSet) -> list[RuleFileError]:
    """Rule references to labels the task/project does not have (they would silently match nothing),
    and skeleton ``bones`` naming keypoints no skeleton label has; each error names file:line and rule."""
    known = {label.name for label in labels}
    keypoints = {sub.name for label in labels for sub in label.sublabels}
    problems: list[RuleFileError] = []
    for rule in pack.rules:
        path, _, line_text = pack.origins.get(rule.id, "").split(" ", 1)[0].rpartition(":")
        line = int(line_text) if line_text.isdigit() else None
        messages = [
            f"{field_name}: no label named {', '.join(missing)}"
            for field_name, names in label_names_used(rule).items()
            if (missing := [n for n in names if n not in known])
        ]
        bones = getattr(rule, "bones", None) or ()
        if missing_kp := sorted({n for bone in bones for n in bone} - keypoints):
            messages.append(f"bones: no keypoint named {', '.join(missing_kp)}")
        problems.extend(RuleFileError(m, path=path or None, line=line, rule_id=rule.id) for m in messages)
    return problems
