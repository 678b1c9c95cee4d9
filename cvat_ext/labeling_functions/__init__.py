"""Programmatic labeling: labeling functions (Python decorator or YAML heuristics) vote on candidate
objects or whole images, a label model combines the votes into probabilistic labels.

Modules: ``candidates`` (the columnar table LFs see), ``functions`` (decorator, ``vote``),
``heuristics`` (YAML), ``apply`` (loading packs, the vote matrix, failing LFs skipped),
``label_model`` (Dawid–Skene and the majority baseline), ``analysis`` (coverage, overlap,
conflict, accuracy), ``cvat_task`` (candidates, gold and write-back for a CVAT task),
``pixels`` (colour features of candidates' pixels, per frame), ``proposals`` (region proposals
of one image), ``prelabel`` (the auto-annotation detector function). Example packs:
``cvat_ext/labeling_functions/packs/``.
"""

from cvat_ext.labeling_functions.candidates import FEATURES, Candidates
from cvat_ext.labeling_functions.functions import ABSTAIN, LabelingFunction, labeling_function, vote

__all__ = ["ABSTAIN", "FEATURES", "Candidates", "LabelingFunction", "labeling_function", "vote"]
