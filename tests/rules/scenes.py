"""Realistic synthetic jobs for the shipped packs: a clean scene plus one defect per rule.

``driving_job(defects)`` / ``retail_job(defects)`` return (annotations, labels, meta); each name in
``defects`` adds one mistake that exactly one rule of the pack (the one named the same in
``DRIVING_DEFECTS`` / ``RETAIL_DEFECTS``, ``+``-joined when two rules rightly fire) must catch.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from cvat_ext.annotations.model import (
    Attribute,
    AttributeInputType,
    AttributeSpec,
    FrameInfo,
    JobAnnotations,
    JobMeta,
    Label,
    LabelSet,
    MaskRle,
    Shape,
    ShapeType,
    Tag,
    Track,
    TrackShape,
)

KP_NAMES = ("head", "l_hand", "r_hand", "l_foot", "r_foot")
POSE_SVG = "".join(
    f'<line x1="0" y1="0" x2="1" y2="1" data-type="edge" data-node-from="1" data-node-to="{n}"></line>'
    for n in range(2, 6)
) + "".join(
    f'<circle r="1.5" cx="0" cy="0" data-type="element node" data-element-id="{n}" data-node-id="{n}" '
    f'data-label-id="{30 + n}"></circle>'
    for n in range(1, 6)
)

DRIVING_LABELS = LabelSet(
    (
        Label(1, "car", "rectangle"),
        Label(2, "truck", "any"),
        Label(3, "person", "any"),
        Label(4, "rider", "rectangle"),
        Label(5, "bicycle", "rectangle"),
        Label(6, "motorcycle", "rectangle"),
        Label(
            7,
            "sign",
            "rectangle",
            attributes=(AttributeSpec(70, "kind", AttributeInputType.SELECT, values=("stop", "yield", "other")),),
        ),
        Label(
            8,
            "traffic_light",
            "rectangle",
            attributes=(
                AttributeSpec(
                    80, "color", AttributeInputType.SELECT, values=("red", "yellow", "green", "off", "unknown")
                ),
            ),
        ),
        Label(
            9,
            "pose",
            "skeleton",
            sublabels=tuple(Label(31 + i, n, "points", parent_id=9) for i, n in enumerate(KP_NAMES)),
            svg=POSE_SVG,
        ),
        Label(10, "day", "tag"),
        Label(11, "night", "tag"),
        Label(12, "blurry", "tag"),
    )
)

DRIVING_DEFECTS = {
    "tiny_car": "tiny-object+vehicle-min-size",
    "small_car": "vehicle-min-size",
    "car_polygon": "vehicle-shape-types",
    "wide_person": "person-upright",
    "rider_alone": "rider-on-vehicle",
    "person_in_car": "no-person-inside-car",
    "sign_without_kind": "sign-kind",
    "small_stop_sign": "small-sign-is-other",
    "blue_light": "traffic-light-color",
    "hand_outside_person": "pose-inside-person",
    "car_teleports": "vehicle-tracks",
    "car_beyond_edge": "beyond-image-edge",
    "car_off_image": "outside-image+beyond-image-edge",  # entirely outside is also beyond the edge
    "duplicate_car": "duplicate-objects",
    "deep_cuboid": "vehicle-cuboid-size",
}

W, H = 1280, 720


def _rect(label: int, xyxy: Iterable[float], frame: int, obj_id: int, **kw: object) -> Shape:
    return Shape(ShapeType.RECTANGLE, frame, label, np.array(list(xyxy), dtype=float), id=obj_id, **kw)  # type: ignore[arg-type]


def _pose(frame: int, x: float, y: float, obj_id: int, group: int, hand_dx: float = 0.0) -> tuple[Shape, Shape]:
    """A person box 60x160 at (x, y) and its skeleton (same group)."""
    person = _rect(3, [x, y, x + 60, y + 160], frame, obj_id, group=group)
    xy = {
        "head": (x + 30, y + 15),
        "l_hand": (x + 8, y + 80),
        "r_hand": (x + 52 + hand_dx, y + 80),
        "l_foot": (x + 20, y + 155),
        "r_foot": (x + 40, y + 155),
    }
    elements = tuple(
        Shape(ShapeType.POINTS, frame, 31 + i, np.array([xy[n]], dtype=float)) for i, n in enumerate(KP_NAMES)
    )
    skel = Shape(ShapeType.SKELETON, frame, 9, np.zeros((0, 2)), id=obj_id + 1, group=group, elements=elements)
    return person, skel


def driving_job(defects: Iterable[str] = (), frames: int = 30) -> tuple[JobAnnotations, LabelSet, JobMeta]:
    defects = set(defects)
    unknown = defects - set(DRIVING_DEFECTS)
    assert not unknown, unknown
    shapes: list[Shape] = []
    tags: list[Tag] = []
    next_id = 1000

    def new_id() -> int:
        nonlocal next_id
        next_id += 2
        return next_id

    for f in range(frames):
        tags.append(Tag(f, 10))
        shapes.append(_rect(1, [100 + 4 * f, 400, 260 + 4 * f, 500], f, new_id()))  # parked car drifting slowly
        shapes.append(_rect(2, [700, 350, 900, 520], f, new_id()))  # truck
        rider_x = 300 + 3 * f
        shapes.append(_rect(4, [rider_x, 300, rider_x + 40, 390], f, new_id()))
        shapes.append(_rect(5, [rider_x - 10, 350, rider_x + 50, 420], f, new_id()))
        shapes.append(_rect(7, [1000, 200, 1030, 230], f, new_id(), attributes=(Attribute(70, "stop"),)))
        shapes.append(_rect(8, [1100, 100, 1120, 150], f, new_id(), attributes=(Attribute(80, "red"),)))
        shapes.extend(_pose(f, 500 + 2 * f, 380, new_id(), group=f + 1))
    cuboid_front = [[600, 560], [600, 640], [700, 560], [700, 640]]
    cuboid = Shape(
        ShapeType.CUBOID, 4, 2, np.array(cuboid_front + [[x + 40, y - 20] for x, y in cuboid_front]), id=new_id()
    )
    shapes.append(cuboid)
    tracks = [
        Track(
            frame=0,
            label_id=1,
            id=1,
            shapes=(
                TrackShape(ShapeType.RECTANGLE, 0, np.array([20.0, 600, 120, 660])),
                TrackShape(ShapeType.RECTANGLE, 10, np.array([120.0, 600, 220, 660])),
                TrackShape(ShapeType.RECTANGLE, 20, np.array([220.0, 600, 320, 660]), outside=True),
            ),
        )
    ]

    # --- defects: each one caught by exactly one rule ----------------------------------------
    if "tiny_car" in defects:
        shapes.append(_rect(1, [50, 50, 52, 52], 3, new_id()))  # 2x2: both the generic and the vehicle bound
    if "small_car" in defects:
        shapes.append(_rect(1, [50, 50, 56, 54], 4, new_id()))  # 6x4: too small for a vehicle, not "tiny"
    if "car_polygon" in defects:
        square = [[400, 100], [450, 100], [450, 140], [400, 140]]
        shapes.append(Shape(ShapeType.POLYGON, 5, 1, np.array(square, dtype=float), id=new_id()))
    if "wide_person" in defects:
        shapes.append(_rect(3, [40, 200, 140, 240], 6, new_id()))  # 100x40 lying person
    if "rider_alone" in defects:
        shapes.append(_rect(4, [1150, 500, 1190, 590], 7, new_id()))
    if "person_in_car" in defects:
        shapes.append(_rect(3, [720, 380, 760, 480], 8, new_id()))  # inside the truck box
    if "sign_without_kind" in defects:
        shapes.append(_rect(7, [900, 50, 930, 80], 9, new_id()))
    if "small_stop_sign" in defects:
        shapes.append(_rect(7, [960, 50, 968, 58], 10, new_id(), attributes=(Attribute(70, "stop"),)))
    if "blue_light" in defects:
        shapes.append(_rect(8, [1150, 100, 1170, 150], 11, new_id(), attributes=(Attribute(80, "blue"),)))
    if "hand_outside_person" in defects:
        shapes.extend(_pose(12, 200, 100, new_id(), group=900, hand_dx=40))
    if "car_teleports" in defects:
        jump = (
            TrackShape(ShapeType.RECTANGLE, 0, np.array([20.0, 20, 120, 80])),
            TrackShape(ShapeType.RECTANGLE, 2, np.array([700.0, 20, 800, 80])),
            TrackShape(ShapeType.RECTANGLE, 10, np.array([700.0, 20, 800, 80]), outside=True),
        )
        tracks.append(Track(frame=0, label_id=1, id=2, shapes=jump))
    if "car_beyond_edge" in defects:
        shapes.append(_rect(1, [1200, 600, 1300, 700], 13, new_id()))
    if "car_off_image" in defects:
        shapes.append(_rect(1, [1300, 600, 1400, 700], 14, new_id()))
    if "duplicate_car" in defects:
        shapes.append(_rect(1, [100 + 4 * 15, 400, 260 + 4 * 15, 501], 15, new_id()))
    if "deep_cuboid" in defects:
        deep = cuboid_front + [[x + 500, y - 20] for x, y in cuboid_front]
        shapes.append(Shape(ShapeType.CUBOID, 16, 2, np.array(deep, dtype=float), id=new_id()))

    meta = JobMeta(start_frame=0, stop_frame=frames - 1, frames=(FrameInfo(W, H),) * frames)
    return JobAnnotations(shapes=tuple(shapes), tags=tuple(tags), tracks=tuple(tracks)), DRIVING_LABELS, meta


# ----------------------------------------------------------------------------------------------
# retail shelves

RETAIL_LABELS = LabelSet(
    (
        Label(
            1,
            "product",
            "any",
            attributes=(
                AttributeSpec(10, "facing", AttributeInputType.SELECT, values=("front", "side", "top", "back")),
            ),
        ),
        Label(
            2,
            "price_tag",
            "rectangle",
            attributes=(
                AttributeSpec(20, "price", AttributeInputType.TEXT),
                AttributeSpec(21, "promo", AttributeInputType.SELECT, values=("yes", "no")),
            ),
        ),
        Label(3, "shelf_edge", "rectangle"),
        Label(4, "empty_slot", "rectangle"),
        Label(5, "aisle", "tag"),
        Label(6, "endcap", "tag"),
        Label(7, "cooler", "tag"),
        Label(8, "checkout", "tag"),
    )
)

RETAIL_DEFECTS = {
    "no_section_tag": "section-tag",
    "tag_without_price": "price-tag-fields",
    "floating_tag": "price-tag-on-shelf-edge",
    "product_in_empty_slot": "empty-slot-is-empty",
    "crossed_polygon": "polygon-valid",
    "split_mask": "mask-valid",
    "banner_product": "product-not-full-width",
    "ellipse_product": "product-shape-types",
    "duplicate_product": "duplicate-objects",
    "tiny_product": "product-min-size",
    "unknown_facing": "product-facing",
}

RW, RH = 4000, 3000
FRONT = (Attribute(10, "front"),)


def retail_job(defects: Iterable[str] = (), frames: int = 6) -> tuple[JobAnnotations, LabelSet, JobMeta]:
    defects = set(defects)
    unknown = defects - set(RETAIL_DEFECTS)
    assert not unknown, unknown
    shapes: list[Shape] = []
    tags: list[Tag] = []
    ids = iter(range(5000, 10**6))
    for f in range(frames):
        if not (f == 2 and "no_section_tag" in defects):
            tags.append(Tag(f, 5 if f % 2 else 6))
        for y in (900, 1900, 2900):
            shapes.append(_rect(3, [0, y, RW, y + 60], f, next(ids)))
            for slot in range(8):
                x = 100 + slot * 450
                if slot == 5:  # an empty slot between products
                    shapes.append(_rect(4, [x, y - 400, x + 300, y], f, next(ids)))
                    continue
                if slot == 2:  # a polygon product (a bottle outline)
                    outline = [
                        [x, y],
                        [x + 300, y],
                        [x + 300, y - 300],
                        [x + 200, y - 400],
                        [x + 100, y - 400],
                        [x, y - 300],
                    ]
                    shapes.append(
                        Shape(ShapeType.POLYGON, f, 1, np.array(outline, dtype=float), id=next(ids), attributes=FRONT)
                    )
                else:
                    shapes.append(_rect(1, [x, y - 400, x + 300, y], f, next(ids), attributes=FRONT))
                price = (Attribute(20, "1.99"), Attribute(21, "yes" if slot == 0 else "no"))
                shapes.append(_rect(2, [x + 90, y + 5, x + 210, y + 55], f, next(ids), attributes=price))
        blob = np.zeros((40, 40), dtype=bool)
        blob[5:35, 5:35] = True
        shapes.append(
            Shape(
                ShapeType.MASK,
                f,
                1,
                np.zeros((0, 2)),
                mask=MaskRle.from_bitmap(blob, 3700, 100),
                id=next(ids),
                attributes=FRONT,
            )
        )

    def add(shape: Shape) -> None:
        shapes.append(shape)

    if "tag_without_price" in defects:
        add(_rect(2, [3650, 905, 3770, 955], 1, next(ids), attributes=(Attribute(21, "no"),)))
    if "floating_tag" in defects:
        add(_rect(2, [190, 1200, 310, 1250], 1, next(ids), attributes=(Attribute(20, "2.49"),)))
    if "product_in_empty_slot" in defects:
        add(_rect(1, [2350, 600, 2600, 900], 3, next(ids), attributes=FRONT))
    if "crossed_polygon" in defects:
        bowtie = [[3000, 2000], [3200, 2200], [3200, 2000], [3000, 2200]]
        add(Shape(ShapeType.POLYGON, 4, 1, np.array(bowtie, dtype=float), id=next(ids), attributes=FRONT))
    if "split_mask" in defects:
        two = np.zeros((40, 80), dtype=bool)
        two[5:35, 5:35] = True
        two[5:35, 45:75] = True
        add(
            Shape(
                ShapeType.MASK,
                5,
                1,
                np.zeros((0, 2)),
                mask=MaskRle.from_bitmap(two, 3000, 100),
                id=next(ids),
                attributes=FRONT,
            )
        )
    if "banner_product" in defects:
        add(_rect(1, [0, 0, 2500, 400], 0, next(ids), attributes=FRONT))
    if "ellipse_product" in defects:
        add(Shape(ShapeType.ELLIPSE, 1, 1, np.array([3500.0, 1500, 3600, 1400]), id=next(ids), attributes=FRONT))
    if "duplicate_product" in defects:
        add(_rect(1, [100, 500, 400, 902], 2, next(ids), attributes=FRONT))
    if "tiny_product" in defects:
        add(_rect(1, [3500, 2500, 3508, 2508], 3, next(ids), attributes=FRONT))
    if "unknown_facing" in defects:
        add(_rect(1, [3500, 1000, 3700, 1300], 4, next(ids), attributes=(Attribute(10, "upside down"),)))

    meta = JobMeta(start_frame=0, stop_frame=frames - 1, frames=(FrameInfo(RW, RH),) * frames)
    return JobAnnotations(shapes=tuple(shapes), tags=tuple(tags)), RETAIL_LABELS, meta
