"""MONAI bundles (model-zoo layout) run by medseg: :mod:`.layout` finds the files and reads
the metadata (YAML through :mod:`.yaml_data`, aliases bounded), :mod:`.trust` lists what in a
bundle needs trust, :mod:`.allowlist` is what an untrusted bundle may name, :mod:`.sanitize`
makes the config MONAI is given, :mod:`.import_path` keeps an untrusted bundle's folder off
``sys.path``, :mod:`.describe` is ``medseg info``, and :mod:`.model` runs the bundle."""
