"""Example LF pack in Python (vectorised over all candidates); check it with
``cvat-ext lf check cvat_ext/labeling_functions/packs/street_python.py``."""

import numpy as np
import numpy.typing as npt

from cvat_ext.labeling_functions import Candidates, labeling_function, vote

LABELS = ["vehicle", "person", "sign"]


@labeling_function(labels=LABELS)
def polygon_like_person(c: Candidates) -> npt.NDArray[np.int64]:
    # people outlined with polygons fill ~55-75% of their box; vehicles fill more
    fill = c.feature("fill")
    return vote(c, (fill > 0.5) & (fill < 0.8) & (c.feature("aspect") < 0.8), "person")


@labeling_function(labels=LABELS)
def road_level_wide_is_vehicle(c: Candidates) -> npt.NDArray[np.int64]:
    bottom = c.xyxy[:, 3] / c.image_wh[:, 1]
    return vote(c, (bottom > 0.6) & (c.feature("aspect") > 1.2), "vehicle")


@labeling_function(labels=LABELS)
def red_round_sign(c: Candidates) -> npt.NDArray[np.int64]:
    red = c.feature("red") - np.maximum(c.feature("green"), c.feature("blue"))
    return vote(c, (red > 40) & (c.feature("fill") < 0.85) & (c.feature("aspect") > 0.8), "sign")


@labeling_function(labels=LABELS)
def uniform_saturated_blob_is_sign(c: Candidates) -> npt.NDArray[np.int64]:
    # signs are painted: one saturated colour (red, yellow or blue), little texture inside, and
    # about as wide as tall (round, square, triangular)
    painted = c.hue_fraction(330, 75) + c.feature("frac_blue")
    flat = c.feature("lab_l_std") < 15
    squarish = (c.feature("aspect") > 0.7) & (c.feature("aspect") < 1.4)
    return vote(c, (painted > 0.6) & flat & squarish & (c.feature("rel_area") < 0.02), "sign")
