"""PII blurring before annotation: detectors (faces, plates), redaction, clean files, task scans.

Commands: ``cvat-ext privacy blur | create-task | scan`` (:mod:`cvat_ext.cli.privacy`).
"""
