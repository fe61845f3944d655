"""The bottom layer: errors, file I/O, BIO and span types, text, metrics and statistics, params, paths, runs,
device, offline assets and benchmark data sources. Imports nothing else of the package."""
