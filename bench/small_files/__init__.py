"""The small-files benchmark: ``comfy-init warmup`` against ``cp -r && sync`` for many small
files on local disk (``python -m bench.small_files``; ``__main__`` says more).

``cases`` makes each case's tree and times one copy of it; ``__main__`` runs the rounds.
"""
