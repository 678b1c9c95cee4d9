"""The QA core imports without OpenCV: cv2 is loaded only when a polygon vote needs it."""

from __future__ import annotations

import subprocess
import sys


def test_consensus_import_does_not_load_cv2() -> None:
    code = (
        "import sys\n"
        "import cvat_ext.consensus, cvat_ext.consensus.engine, cvat_ext.consensus.merge, cvat_ext.cli.qa\n"
        "print(sorted(m for m in sys.modules if m == 'cv2' or m.startswith('cv2.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_polygon_vote_loads_cv2_on_demand() -> None:
    import numpy as np

    from cvat_ext.consensus.merge import fuse_polygons

    square = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])
    poly = fuse_polygons([square, square + 0.5, square - 0.5], np.ones(3), "wbf", 0.5)
    assert poly is not None and poly.shape[1] == 2
    assert "cv2" in sys.modules
