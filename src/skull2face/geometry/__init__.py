"""Geometry: surfaces, the head frame and depth maps (numpy/scipy/trimesh/Embree/libigl; never torch).

``surfaces``      skin and bone surfaces of a head volume
``frame``         the head frame (+x subject's left, +y up, +z anterior, origin at nasion)
``depthmap``      orthographic depth maps with their render spec, and back to meshes
``codec``         depth^k normalisation and the residual decode (numpy and torch alike)
``resample``      a map at a coarser resolution (block means over the valid pixels)
``pose``          coarse pose of a mesh before its landmarks are known
``symmetry``      the mid-sagittal symmetry plane
``lids``          flat scan cuts ("lids") where a scan ends
``normals``       outward bone normals and the head centre they point away from
``fill``          closing pits and holes of a height map (the filled skull)
``smooth``        NaN-aware Gaussian smoothing of a map (normalised convolution, an edge mode)
``distances``     exact point-to-surface distances, vertex areas
``tps``           thin-plate spline warps
``interpolate``   Shepard inverse-distance weighting
"""
