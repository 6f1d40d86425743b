"""Many hosts, one upload id: the protocol behind ``asyncup.parallel`` and ``asyncup.dask``.

protocol (begin, upload_parts, complete, abort, resume), hosts (what each host checks and
sends with), manifest (the coordinator's journal), spread (pure: batches, rates, reconciling
parts), dask_bridge, dask_parts and dask_files (the only importers of distributed). Nothing
below this package imports it.
"""
