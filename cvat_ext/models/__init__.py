"""Model code behind the serverless functions and the cvat-sdk auto-annotation modules.

Heavy libraries (torch, torchvision, cv2) are imported only inside the functions and classes that
run a model, so importing this package costs nothing. ``cvat_ext.models.sdk_*`` modules import
``cvat_sdk.auto_annotation``: that is the SDK's function protocol, the one place outside
``cvat_ext.cvat`` allowed to import cvat_sdk.
"""
