"""Strategies: which candidates to run next, decided from the finished rows of the store.

See :mod:`unnas.strategies.base` for the contract. Every strategy module registers itself in
:data:`unnas.registry.STRATEGIES`.
"""
