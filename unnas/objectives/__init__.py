"""The Objective contract and the supervised objective (label-free ones live in ``pretext``/``moco``)."""

from unnas.objectives.base import DataInfo, Objective, build_objective, objective_class

__all__ = ["DataInfo", "Objective", "build_objective", "objective_class"]
