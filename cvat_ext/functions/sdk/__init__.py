"""The functions as cvat-sdk auto-annotation modules (``cvat-cli task auto-annotate --function-module``).

These import ``cvat_sdk.auto_annotation`` (the SDK's function protocol, the one exception to "only
``cvat_ext.cvat`` imports cvat_sdk"), so the Nuclio runtime never imports them.
"""
