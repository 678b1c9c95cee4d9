"""One CVAT annotations JSON file, spilled to disk and read back a window of frames at a time.

:class:`FrameStore` reads a ``GET /api/jobs/{id}/annotations`` body (``LabeledData``) from a file
incrementally with ijson, validates every tag, shape and track with the parsers of
:mod:`cvat_ext.annotations.cvat_json` as it arrives, and stores each object's JSON text in a
private SQLite database in a temporary folder (removed by :meth:`FrameStore.close`):

* ``shapes(frame, body)`` and ``tags(frame, body)``, indexed by frame, ``rowid`` = file order;
* ``tracks(first_frame, body)``, indexed by the frame of the track's first keyframe (the first
  frame it can show a shape on); tracks without keyframes show nothing and are only counted.

:meth:`FrameStore.iter_frames` yields what :func:`cvat_ext.annotations.tracks.iter_frames` yields
for the whole parsed file, frame by frame, while holding only one window of shapes and tags plus
the tracks alive in it: a track is loaded when the window reaches its first keyframe and expanded
lazily (by :mod:`cvat_ext.annotations.tracks`) until it ends, so a long track is never expanded
twice. Memory is bounded by the window, not by the file.

The file is read in four streaming passes (top-level structure, then tags, shapes and tracks),
each at the C parser's speed; a file of 200,000 boxes (60 MB) takes about 3 s on one core.
"""

from __future__ import annotations

import itertools
import json
import logging
import operator
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Final, TypeVar

import ijson

from cvat_ext.annotations.cvat_json import parse_job_annotations, parse_shape, parse_tag, parse_track
from cvat_ext.annotations.model import FrameAnnotations, JobAnnotations, Shape, Tag
from cvat_ext.annotations.tracks import iter_frames as expand_frames
from cvat_ext.errors import AnnotationFormatError

__all__ = ["FrameStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: the sections of ``LabeledData`` that hold objects, in the order they are stored
_SECTIONS: Final = ("tags", "shapes", "tracks")
#: top-level keys whose type :func:`parse_job_annotations` checks (with the object sections)
_TOP_KEYS: Final = frozenset({"version", "intervals", *_SECTIONS})
#: event prefixes the structure pass looks at: the root, its values and their items
_STRUCTURE_PREFIXES: Final = frozenset({"", *_TOP_KEYS, *(f"{key}.item" for key in _TOP_KEYS)})
#: rows written per ``executemany``
_INSERT_BATCH: Final = 4096
#: SQLite stores 64-bit integers, as does the JSON parser (larger ones are a JSON error)
_INT64: Final = 2**63

_SCHEMA: Final = """
CREATE TABLE shapes (frame INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE tags (frame INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE tracks (first_frame INTEGER NOT NULL, body TEXT NOT NULL);
"""
_INDEXES: Final = """
CREATE INDEX shapes_frame ON shapes (frame);
CREATE INDEX tags_frame ON tags (frame);
CREATE INDEX tracks_first_frame ON tracks (first_frame);
"""


@dataclass
class _LiveTrack:
    """A track being expanded: its file position, its lazy per-frame expansion and the next frame."""

    seq: int
    frames: Iterator[FrameAnnotations]
    head: FrameAnnotations | None = field(default=None)

    def advance(self) -> None:
        self.head = next(self.frames, None)


class FrameStore:
    """One annotations JSON file on disk, validated, indexed by frame (see the module docstring).

    ``FrameStore(path)`` reads the whole file (raising :class:`AnnotationFormatError` naming the
    file and the JSON location, e.g. ``a.json: shapes[1234] frame 7: polygon 3 has 2 points``,
    with nothing left on disk). Use it as a context manager, or call :meth:`close`.
    ``temp_dir`` is where the temporary folder goes (default: the system's).
    """

    def __init__(self, path: str | PathLike[str], *, temp_dir: str | PathLike[str] | None = None) -> None:
        self.path = Path(path)
        self.version = 0
        #: objects per section as read from the file (tracks without keyframes included)
        self.counts: dict[str, int] = dict.fromkeys(_SECTIONS, 0)
        self._dir: Path | None = Path(tempfile.mkdtemp(prefix="cvat-ext-frames-", dir=temp_dir))
        self._db = sqlite3.connect(self._dir / "frames.sqlite", isolation_level=None)
        try:
            self._db.executescript(
                "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-8192;" + _SCHEMA
            )
            self._load()
            self._db.executescript(_INDEXES)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------------------
    # lifetime

    def close(self) -> None:
        """Close the database and remove its folder (idempotent)."""
        self._db.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> FrameStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def has_tracks(self) -> bool:
        """Whether the file lists any track (this changes ``track_ids`` of every frame, as in
        :func:`cvat_ext.annotations.tracks.iter_frames`)."""
        return self.counts["tracks"] > 0

    # ------------------------------------------------------------------------------------------
    # reading the file

    def _load(self) -> None:
        present = self._check_structure()
        where = str(self.path)
        self._db.execute("BEGIN")
        for section in _SECTIONS:
            if not present[section]:
                continue
            with self._open() as fh:
                items = ijson.items(fh, f"{section}.item", use_float=True)
                rows = (self._row(section, i, obj, where) for i, obj in enumerate(self._guard(items)))
                for batch in _batched(rows, _INSERT_BATCH):
                    self._insert(section, batch)
        self._db.execute("COMMIT")

    def _row(self, section: str, index: int, obj: Any, where: str) -> tuple[int, str] | None:
        """Validate one object; its ``(frame, JSON text)`` row, None for a track without keyframes."""
        self.counts[section] += 1
        at = f"{where}: {section}[{index}]"
        if section == "shapes":
            frame = parse_shape(obj, where=at).frame
        elif section == "tags":
            frame = parse_tag(obj, where=at).frame
        else:
            track = parse_track(obj, where=at)
            if not track.shapes:
                return None
            frame = track.shapes[0].frame
        return frame, json.dumps(obj, separators=(",", ":"), ensure_ascii=False)

    def _insert(self, section: str, rows: list[tuple[int, str] | None]) -> None:
        column = "first_frame" if section == "tracks" else "frame"
        self._db.executemany(
            f"INSERT INTO {section} ({column}, body) VALUES (?, ?)",
            [row for row in rows if row is not None],
        )

    def _check_structure(self) -> dict[str, bool]:
        """Check the top level (an object; ``version`` an integer; lists of objects) the way
        :func:`parse_job_annotations` does, without building the lists; which sections have items."""
        root: Any = None
        top: dict[str, Any] = {}
        intervals: list[Any] = []
        present = dict.fromkeys(_SECTIONS, False)
        with self._open() as fh:
            events, prefixes = itertools.tee(ijson.parse(fh, use_float=True))
            wanted = map(_STRUCTURE_PREFIXES.__contains__, map(operator.itemgetter(0), prefixes))
            for prefix, event, value in self._guard(itertools.compress(events, wanted)):
                if event in ("end_map", "end_array") or (event == "map_key" and prefix != ""):
                    continue
                if prefix == "":
                    if root is None:
                        root = _placeholder(event, value)
                    elif event == "map_key" and value in top:
                        raise AnnotationFormatError(f"{self.path}: annotations have the key '{value}' twice")
                    elif event == "map_key" and value in _TOP_KEYS:
                        top[value] = None
                elif not isinstance(root, dict):
                    continue  # items of a root array: the root itself is the error
                elif prefix in _TOP_KEYS:
                    top[prefix] = _placeholder(event, value)
                elif prefix == "intervals.item":
                    intervals.append(_placeholder(event, value))
                else:
                    present[prefix.partition(".")[0]] = True
        if isinstance(root, dict):
            root = {**top, "intervals": intervals} if isinstance(top.get("intervals"), list) else dict(top)
        self.version = parse_job_annotations(root, where=str(self.path)).version
        return present

    def _open(self) -> BinaryIO:
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise AnnotationFormatError(f"{self.path}: cannot read: {exc.strerror or exc}") from exc

    def _guard(self, items: Iterable[Any]) -> Iterator[Any]:
        """``items`` with ijson's and the file's errors translated (naming the file)."""
        try:
            yield from items
        except (ijson.JSONError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            # yajl's message goes on with a multi-line excerpt: keep its first line
            first_line = next(iter(str(exc).splitlines()), type(exc).__name__)
            raise AnnotationFormatError(f"{self.path}: invalid JSON: {first_line}") from exc
        except OSError as exc:
            raise AnnotationFormatError(f"{self.path}: cannot read: {exc.strerror or exc}") from exc

    # ------------------------------------------------------------------------------------------
    # frames back

    def iter_frames(self, last_frame: int | None, *, window: int = 256) -> Iterator[FrameAnnotations]:
        """Per-frame annotations in frame order, tracks expanded up to ``last_frame`` (the job's
        ``stop_frame``): exactly what ``iter_frames(parse_job_annotations(file), last_frame=...)``
        gives (and, for a file without tracks, ``track_ids`` empty as the engine's fast path),
        reading ``window`` frames of shapes and tags at a time."""
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        where = str(self.path)
        live: list[_LiveTrack] = []
        cursor = -_INT64
        while True:
            start = self._next_frame(cursor, live)
            if start is None:
                return
            stop = min(start + window, _INT64)
            live = self._add_tracks(live, start, stop, last_frame, where)
            track_shapes = _take_track_shapes(live, stop)
            live = [t for t in live if t.head is not None]
            shapes = _by_frame(self._rows("shapes", start, stop), lambda o: parse_shape(o, where=where))
            tags = _by_frame(self._rows("tags", start, stop), lambda o: parse_tag(o, where=where))
            for frame in sorted(shapes.keys() | tags.keys() | track_shapes.keys()):
                yield self._frame(frame, shapes.get(frame, []), tags.get(frame, []), track_shapes.get(frame, []))
            cursor = stop

    def _frame(
        self, frame: int, shapes: list[Shape], tags: list[Tag], from_tracks: list[tuple[Shape, int | None]]
    ) -> FrameAnnotations:
        if not self.has_tracks:
            return FrameAnnotations(frame, tuple(shapes), tuple(tags))
        if not shapes and not from_tracks:
            return FrameAnnotations(frame, (), tuple(tags), ())
        all_shapes = (*shapes, *(s for s, _ in from_tracks))
        track_ids = (*((None,) * len(shapes)), *(t for _, t in from_tracks))
        return FrameAnnotations(frame, all_shapes, tuple(tags), track_ids)

    def _next_frame(self, cursor: int, live: list[_LiveTrack]) -> int | None:
        """The first frame at or after ``cursor`` that may hold something."""
        found = [t.head.frame for t in live if t.head is not None]
        for table, column in (("shapes", "frame"), ("tags", "frame"), ("tracks", "first_frame")):
            (frame,) = self._db.execute(
                f"SELECT MIN({column}) FROM {table} WHERE {column} >= ?",
                (cursor,),
            ).fetchone()
            if frame is not None:
                found.append(int(frame))
        return min(found, default=None)

    def _rows(self, table: str, start: int, stop: int) -> list[tuple[int, str]]:
        return self._db.execute(
            f"SELECT frame, body FROM {table} WHERE frame >= ? AND frame < ? ORDER BY frame, rowid",
            (start, stop),
        ).fetchall()

    def _add_tracks(
        self, live: list[_LiveTrack], start: int, stop: int, last_frame: int | None, where: str
    ) -> list[_LiveTrack]:
        """``live`` plus the tracks whose first keyframe lies in ``[start, stop)``, in file order."""
        rows = self._db.execute(
            "SELECT rowid, body FROM tracks WHERE first_frame >= ? AND first_frame < ? ORDER BY rowid",
            (start, stop),
        ).fetchall()
        if not rows:
            return live
        for seq, body in rows:
            track = parse_track(json.loads(body), where=f"{where}: tracks")
            started = _LiveTrack(seq, expand_frames(JobAnnotations(tracks=(track,)), last_frame=last_frame))
            started.advance()
            live.append(started)
        return sorted(live, key=operator.attrgetter("seq"))


def _placeholder(event: str, value: Any) -> Any:
    """A stand-in with the JSON type of a value that starts with ``event`` (containers empty)."""
    if event == "start_map":
        return {}
    if event == "start_array":
        return []
    return value


def _batched(rows: Iterable[tuple[int, str] | None], size: int) -> Iterator[list[tuple[int, str] | None]]:
    it = iter(rows)
    while batch := list(itertools.islice(it, size)):
        yield batch


def _by_frame(rows: list[tuple[int, str]], parse: Callable[[Any], T]) -> dict[int, list[T]]:
    """Rows ``(frame, JSON text)`` in frame order -> frame -> parsed objects (one ``json.loads``)."""
    if not rows:
        return {}
    objects = json.loads("[" + ",".join(body for _, body in rows) + "]")
    out: dict[int, list[T]] = {}
    for (frame, _), obj in zip(rows, objects, strict=True):
        out.setdefault(frame, []).append(parse(obj))
    return out


def _take_track_shapes(live: list[_LiveTrack], stop: int) -> dict[int, list[tuple[Shape, int | None]]]:
    """Advance every live track (in file order) up to ``stop``: frame -> ``(shape, track id)``."""
    out: dict[int, list[tuple[Shape, int | None]]] = {}
    for track in live:
        while track.head is not None and track.head.frame < stop:
            out.setdefault(track.head.frame, []).extend(zip(track.head.shapes, track.head.track_ids, strict=True))
            track.advance()
    return out
