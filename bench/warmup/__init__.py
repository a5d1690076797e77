"""The warmup benchmark: ``comfy-init warmup`` against ``cp -r`` and ``rsync -a`` on local
disk and on the slow volume (``python -m bench.warmup``; ``__main__`` says more).

``dataset`` makes the files, ``rounds`` times every row in rounds, ``readers`` runs the
parallel ``dd`` readers, ``results`` turns rows into ratios, goals and Markdown.
"""
