"""Model code behind the serverless functions and the cvat-sdk auto-annotation modules.

Heavy libraries (torch, torchvision, cv2) are imported only inside the functions and classes that
run a model, so importing this package costs nothing. It imports nothing above it: the functions
that serve these models (Nuclio handlers, and cvat-sdk's auto-annotation protocol in
``cvat_ext.functions.sdk``) live in :mod:`cvat_ext.functions`.
"""
