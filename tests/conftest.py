import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def real_ct_surfaces():
    """Skin and skull of both bundled real CTs, extracted once per test session."""
    from skull2face import samples
    from skull2face.geometry.surfaces import extract_surfaces
    from skull2face.io.volumes import read_volume

    out = {}
    for name in ("headsq", "cranium"):
        vol = read_volume(samples.path(name))
        out[name] = (vol, extract_surfaces(vol))
    return out
