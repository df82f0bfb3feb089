"""Statistical shape models fitted to skulls (numpy/scipy/libigl; the geometry layer's peers).

``face_model``       the ICT-FaceKit head model: loading, the L_A landmark targets, the fit
``thickness_prior``  the dense soft-tissue thickness prior measured on real heads
``skull_fit``        the model fitted to one skull with that prior: the face-model face
"""
