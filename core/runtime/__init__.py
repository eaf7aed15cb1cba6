"""webtensor.core.runtime: the runtime layer, between core and the backends.

What every backend implements or uses and what the API reaches the backends through: the device
interface and registry (:mod:`.device`), the host-data layout (:mod:`.hostdata`), the bounded
compiled-code caches (:mod:`.cache`), lazy optional imports (:mod:`.util`), and the artifact
exporter/loader registries with the buffer plan both exporters follow (:mod:`.artifacts`). It
imports only ``core``; the backends register themselves here when ``webtensor`` is imported.
"""
