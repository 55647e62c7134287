"""Model families, one package each: elements, monoids and inference functions.

A family builds elements, calls `scanalg.scan`, and reads results out; it contains no
scan logic and never imports another family. The public modules `scanalg.hmm` and
`scanalg.lgssm` re-export each family's API.
"""
