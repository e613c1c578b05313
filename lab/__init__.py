"""The simulation lab: graphs in (``lab.graphs``, ``lab.importer``), experiments on them (docs/lab.md)."""
