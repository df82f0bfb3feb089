"""Pictures and reports a forensic user can read without a notebook.

``pictures``   shaded meshes, mesh-on-slice overlays, depth maps with landmarks (Agg figures)
``heatmap``    the truth coloured by its distance to a prediction
``dataset``    the picture of a dataset's samples
``tables``     plain-text metrics tables
``collect``    gathering predict/evaluate folders into a report's content
``html``       the self-contained HTML page (and its Chromium screenshot)
``provenance`` settings, hashes, model card, tissue table, face region and per-region errors as tables
``scene3d``    the page's interactive 3D view (decimated GLB + vendored three.js + ``viewer.js``)
``pdf``        the page as an A4 PDF with page numbers (headless Chromium's print)
``browser``    headless Chromium over the DevTools pipe (screenshots, PDF, the browser tests)
"""
