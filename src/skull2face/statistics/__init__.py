"""Statistical shape models fitted to skulls (numpy/scipy/libigl; the geometry layer's peers).

``face_model``   the ICT-FaceKit head model: loading, the L_A landmark targets, the fit
"""
