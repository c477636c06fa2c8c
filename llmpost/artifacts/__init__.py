"""The artifact store: versioned, immutable stage outputs with manifests and lineage.

`store.py` holds `Store`, `Artifact` and `Pending`; `manifest.py` the manifest file;
`refs.py` the `NAME@vN` syntax; `lineage.py` the parent tree; `locking.py` the flocks.
"""

from llmpost.artifacts.store import Artifact, Pending, Store

__all__ = ["Artifact", "Pending", "Store"]
