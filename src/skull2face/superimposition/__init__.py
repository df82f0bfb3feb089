"""Craniofacial superimposition: could this skull be the person in this photograph? (layer 6)

`register`
    Soft-tissue points over the skull's landmarks, the camera solve (OpenCV SQPnP over a focal
    length search, RANSAC, robust refinement) and the per-landmark residuals in px and mm.
`grade`
    The graded conclusion (strong / moderate / limited support, or inconsistent), its
    thresholds in mm at the face and the caveat.
`synthetic`
    "Photographs" of a head's skin rendered through a known camera, with their landmarks, for
    tests and benchmarks.
"""
