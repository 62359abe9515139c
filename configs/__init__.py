"""The shipped experiment configs (YAML): ``unnas rank --config NAME`` reads ``NAME.yaml`` from here,
and ``unnas list configs`` lists them. Installed as ``unnas.configs``."""
