"""What differs between the CVAT servers we talk to (server side), with cvat-sdk 2.80 as the client.

The SDK's generated code follows the 2.80 schema; cvat-ext is built and verified against CVAT
2.73.0 (recordings in ``tests/data/cvat-2.73/recorded``). Differences that matter to the client:

==============================  ================================  ===================================
area                            CVAT 2.73                         newer servers (SDK 2.80 schema)
==============================  ================================  ===================================
quality settings                flat fields (``iou_threshold``,   ``requirements`` list; PUT and
                                ``target_metric`` ...), PATCH      ``/settings/requirements`` exist
                                only
quality report summary          ``accuracy/precision/recall``,    ``requirements``; ``jobs``/``tasks``
                                ``jobs`` without ``completed``    need ``completed`` -> the SDK's typed
                                -> SDK typed model raises          model fails on 2.73 task reports
                                TypeError
quality report confusion        not available                     ``/reports/{id}/confusion[/matrix]``
task ``initial_replicas``       ignored                           accepted
job type of consensus replicas  ``consensus_replica``             ``replica`` (the SDK's enum for the
                                                                  ``type`` filter rejects 2.73's name)
==============================  ================================  ===================================

Consequences: every quality call reads and writes raw JSON (``_parse_response=False``), on any
version, and quality settings are patched with whatever fields the caller gives. Jobs, tasks,
issues, comments, labels, consensus and annotation bodies are the same on both sides; we still
parse them ourselves (faster than the generated models and tolerant of added fields). Our
:class:`~cvat_ext.cvat.records.Job` always says ``consensus_replica``; the jobs list goes out as
a raw query (the SDK's enum would reject 2.73's value) and a ``type="consensus_replica"`` filter
is sent as the server's own name (the version is asked once per client).
"""

from __future__ import annotations

from dataclasses import dataclass

from cvat_ext.cvat.records import ServerInfo
from cvat_ext.errors import CvatVersionError

#: oldest server we support: consensus merges, ``/api/requests`` polling and webhook ``changes``
#: as used here are verified on 2.73.0
MIN_SUPPORTED: tuple[int, int, int] = (2, 73, 0)

#: last server release with the flat quality settings / summaries (verified)
LAST_FLAT_QUALITY: tuple[int, int, int] = (2, 73, 999)


@dataclass(frozen=True)
class ServerFeatures:
    """Version-dependent behaviour switches derived from :class:`ServerInfo`."""

    version: tuple[int, int, int]
    flat_quality_settings: bool  # iou_threshold & co. directly on /api/quality/settings/{id}
    quality_settings_put: bool  # PUT /api/quality/settings/{id} exists
    quality_confusion: bool  # /api/quality/reports/{id}/confusion exists
    replica_job_type: str  # the server's job ``type`` value for consensus replicas


def features_for(info: ServerInfo) -> ServerFeatures:
    """The switches for ``info``; raises :class:`CvatVersionError` for servers older than 2.73."""
    v = info.version_tuple
    if v < MIN_SUPPORTED:
        need = ".".join(map(str, MIN_SUPPORTED))
        raise CvatVersionError(f"CVAT {info.version} is older than {need}, the oldest version cvat-ext supports")
    newer = v > LAST_FLAT_QUALITY
    return ServerFeatures(
        version=v,
        flat_quality_settings=not newer,
        quality_settings_put=newer,
        quality_confusion=newer,
        replica_job_type="replica" if newer else "consensus_replica",
    )
