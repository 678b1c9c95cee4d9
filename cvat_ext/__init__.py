"""cvat-ext: model-assisted labeling, consensus QA and active learning on top of CVAT Community."""

__version__ = "0.1.0"
