"""Every way to turn a skull into a face, behind one interface (see `registry`).

``registry``        the one list of methods: names, summaries, `predict_face_map`
``tissue_depth``    the classic tissue-depth method (thickness sites, interpolation, offset)
``nose``            its rule-based nose (aperture width, schematic nose)
``mean_face``       the mean training face
``nearest_skull``   the face of the nearest training skull
``envelope``        the skull grown by a constant 6 mm
``face_model``      the ICT-FaceKit head model fitted to the skull (`skull2face.statistics`)
``references``      training reference maps and resampling onto a target's render spec
"""
