"""Consensus settings: what the sidecar, the CLI and the benchmark pass to the engine.

Parsed with pydantic (``extra="forbid"``) because they arrive from YAML, HTTP or the command line.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError

from cvat_ext.errors import ConfigError

#: ``wbf``: weighted boxes fusion, weighted pixel vote for masks/polygons, weighted keypoint median;
#: ``staple``: the same with STAPLE EM for masks/polygons;
#: ``nearest``: CVAT's documented rule (member nearest the mean box, majority label), equal weights.
MergeMethod = Literal["wbf", "staple", "nearest"]


class ConsensusSettings(BaseModel):
    """Knobs of matching, agreement and merge.

    ``iou_thr`` is the similarity (IoU, or OKS for points/skeletons) a pair needs to match.
    ``quorum`` is the number of annotators that must have seen an object for it to be merged
    (``1`` = keep everything, as CVAT does). ``None`` = automatic: an object is merged when its
    probability of being real, from a two-class Dawid–Skene model of who draws what, is >= 0.5
    (needs ``estimate_reliability``, 3+ replicas and a method other than ``nearest``; otherwise a
    strict majority). Tags always use the count (a strict majority when ``None``).
    ``keypoint_sigmas`` (skeleton OKS): ``"default"`` = ``oks_sigma`` for every keypoint;
    ``"estimate"`` = match once with the default, estimate each keypoint's sigma from the spread of
    the matched clusters (per skeleton label), match again with those; or a mapping
    ``skeleton label name -> sigmas`` in the order of the label's sublabels.
    ``rejoin_share``: an object no other annotator matched (a singleton) joins another
    annotator's cluster when their similarity reaches ``rejoin_share * iou_thr`` (the same object
    drawn too differently to match; reported as low overlap); ``0`` never.
    ``weights`` fixes annotator weights (annotator -> weight > 0); otherwise they are estimated
    from the job when ``estimate_reliability`` is true, or equal.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    iou_thr: float = Field(0.5, gt=0.0, le=1.0)
    quorum: int | None = Field(None, ge=1)
    method: MergeMethod = "wbf"
    match_across_labels: bool = True
    estimate_reliability: bool = True
    weights: dict[str, float] | None = None
    rejoin_share: float = Field(0.5, ge=0.0, le=1.0)
    low_overlap_thr: float = Field(0.8, ge=0.0, le=1.0)
    oks_sigma: float = Field(0.09, gt=0.0)
    keypoint_sigmas: Literal["default", "estimate"] | dict[str, list[PositiveFloat]] = "default"
    line_thickness: float = Field(0.01, gt=0.0)
    mask_vote_thr: float = Field(0.5, gt=0.0, lt=1.0)
    chunk_frames: int = Field(256, ge=1)
    dawid_skene_iters: int = Field(20, ge=0)

    @property
    def weak_thr(self) -> float | None:
        """Similarity at which a singleton rejoins another annotator's object (None: never)."""
        return self.iou_thr * self.rejoin_share if self.rejoin_share > 0 else None

    @property
    def link_thr(self) -> float:
        """Similarity at which drawings join one cluster: :attr:`weak_thr`, or :attr:`iou_thr` where
        singletons never rejoin."""
        weak = self.weak_thr
        return self.iou_thr if weak is None else weak

    def auto_quorum(self, n_annotators: int) -> bool:
        """True when the quorum is decided by the existence model."""
        return self.quorum is None and self.estimate_reliability and self.method != "nearest" and n_annotators >= 3

    def quorum_label(self, n_annotators: int) -> str:
        """How the report shows the quorum: ``auto`` or the count."""
        return "auto" if self.auto_quorum(n_annotators) else str(self.quorum_for(n_annotators))

    def quorum_for(self, n_annotators: int) -> int:
        """The effective quorum for ``n_annotators`` replicas."""
        if self.quorum is None:
            return n_annotators // 2 + 1
        return min(self.quorum, max(n_annotators, 1))

    @classmethod
    def parse(cls, data: object, *, where: str = "consensus settings") -> ConsensusSettings:
        """Validate untrusted input; errors become :class:`ConfigError` naming the field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "(root)"
            raise ConfigError(f"{where}: {loc}: {first['msg']}") from exc
