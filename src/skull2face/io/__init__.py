"""Reading and writing, with input checks and clear errors. Nothing here edits an input.

``volumes``      head CT/MR volumes (DICOM series, NIfTI, NRRD, MHA) into HU and LPS mm
``dicom``        DICOM series onto a regular grid (gantry tilt, uneven spacing), under ``volumes``
``volume_base``  the in-memory `Volume` and the checks both readers share (imports neither)
``meshes``       meshes (PLY, OBJ, STL, OFF, GLB) with unit and sanity checks
``landmarks``    landmark files (canonical JSON, 3D Slicer, MeshLab, CSV)
``error_mesh``   the evaluation's error-coloured truth mesh (PLY with per-vertex errors)
``atomic``       atomic writes (temporary file, then rename)
"""
