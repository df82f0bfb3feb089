"""Geometry: the common head frame and orthographic depth maps (torch-free).

``frame``
    The head coordinate frame (+x subject's left, +y up, +z anterior, mid-sagittal plane
    at x = 0, origin at nasion), built from landmarks, plus rigid least-squares fitting.
``depthmap``
    Orthographic float32 depth maps in millimetres rendered along -z of the head frame,
    their (de)normalisation, conversion back to meshes, and storage.
"""
