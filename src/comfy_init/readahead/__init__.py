"""Read ahead, at every start, the files ComfyUI read from the volume at the last one.

``recorder`` + ``hook/`` learn them, ``trace`` orders them, ``startlist`` keeps them on the
volume, ``replay`` reads them into the page cache, ``session`` runs one start of it,
``report`` is what the metrics sidecar reads.
"""
