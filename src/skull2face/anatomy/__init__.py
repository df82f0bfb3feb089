"""Anatomy: what heads are, and finding their landmarks.

Knowledge (layer 2, no algorithms on meshes):

``names``           landmark names and definitions (paper Tables 1 and 2), sides and pairs
``landmark_set``    the `LandmarkSet` type (named LPS points in mm)
``tissue``          the published soft-tissue thickness table (Hona & Stephan 2024)

Detection (layer 5, uses geometry):

``detect``          landmark rules: working frame, mid-sagittal profile, midline and
                    bilateral rules for skulls and faces
``locate``          landmarks of a mesh: coarse pose, given landmarks kept, the rest detected
"""
