"""Integer encodings of searchable design spaces: what search strategies see of a generator.

A generator that can be searched defines three methods:

* ``cardinalities(base) -> list[int]``: position ``i`` of a code vector takes values
  ``0 .. card[i] - 1``; ``base`` are the fixed parameters of the search (a parameter fixed there
  is not searched);
* ``encode(params, seed=0) -> list[int]``: the code vector of a network (``seed`` matters only
  when ``params`` leave the structure to the seed, e.g. ``arch=""``);
* ``decode(codes, base) -> params``: the canonical parameters of the network a code vector names.

Every encoding here is a product space and a bijection between code vectors and canonical
parameters: ``decode(encode(p)) == p`` for canonical ``p`` (what ``decode`` returns), and
``encode(decode(c)) == c`` for every valid ``c``. So a uniform code vector is a uniform network.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from unnas.errors import UserError


def check_codes(gen: str, codes: Sequence[int], cards: Sequence[int]) -> list[int]:
    """``codes`` as a list of ints, or one :class:`UserError` naming what is wrong."""
    codes = [int(c) for c in codes]
    if len(codes) != len(cards):
        raise UserError(f"generator {gen} encoding", codes, f"{len(cards)} positions",
                        message=f"{len(codes)} positions")
    for i, (c, k) in enumerate(zip(codes, cards)):
        if not 0 <= c < k:
            raise UserError(f"generator {gen} encoding", codes, f"position {i} in 0..{k - 1}",
                            message=f"position {i} is {c}")
    return codes


def to_digits(index: int, radix: int, n: int) -> list[int]:
    """The ``n`` base-``radix`` digits of ``index``, most significant first."""
    out = []
    for _ in range(n):
        index, d = divmod(index, radix)
        out.append(d)
    return out[::-1]


def from_digits(digits: Sequence[int], radix: int) -> int:
    index = 0
    for d in digits:
        index = index * radix + int(d)
    return index


def sampler_values(spec: Sequence[Any]) -> list[Any] | None:
    """The sorted distinct values a discrete sampler spec (:func:`unnas.generators.layers.draw`)
    can give, or None when it is continuous."""
    kind = spec[0]
    if kind == "choice":
        return sorted(set(spec[1]))
    if kind in ("uniform", "log_uniform"):
        return list(range(int(spec[1]), int(spec[2]) + 1))
    if kind == "pow2":
        return [2 ** e for e in range(int(math.ceil(math.log2(spec[1]))), int(math.floor(math.log2(spec[2]))) + 1)]
    return None


def fixed_in_base(gen: str, key: str, base: Any) -> UserError:
    return UserError(f"generator {gen} parameter {key}", base[key], f"no fixed {key} when searching",
                     message=f"{key} is the searched parameter and cannot be fixed")


def pairs(n: int) -> list[tuple[int, int]]:
    """The ``n * (n - 1) / 2`` pairs ``i < j`` of ``range(n)`` in lexicographic order."""
    return [(i, j) for i in range(n) for j in range(i + 1, n)]
