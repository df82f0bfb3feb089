"""Every way to turn a skull into a face, behind one interface (see `registry`).

``registry``        the one list of methods: names, summaries, `run_method`
``result``          `MethodResult`: what every method returns (face map, record, whole head)
``cgan``            ``skull2face``: the trained generator's correction of the fitted whole head
``correction``      where that correction applies and how much of it is trusted (fold gains)
``tissue_depth``    the classic tissue-depth method (thickness sites, interpolation, offset)
``nose``            its rule-based nose (aperture width, schematic nose)
``mean_face``       the mean training face
``nearest_skull``   the face of the nearest training skull
``envelope``        the skull grown by a constant 6 mm
``face_model``      the ICT-FaceKit head model fitted to the skull (`skull2face.statistics`)
``references``      training reference maps (a dataset's, for predict --data) and resampling onto a target's spec
"""
