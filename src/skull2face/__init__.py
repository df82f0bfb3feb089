"""skull2face: forensic facial approximation from a 3D skull, in millimetres.

The pipeline flows one way, one stage per module:
volume or mesh -> surfaces (``extract``) -> landmarks -> head frame -> depth maps
-> dataset -> model -> face mesh -> evaluation -> report.
"""

__version__ = "0.1.0"

from .errors import InputError  # noqa: F401
