"""Development and deployment tools: the local Nuclio dashboard stand-in and the function.yaml lint.

Not part of the runtime that ships in function images: nothing under ``cvat_ext.functions`` outside
this package imports it.
"""
