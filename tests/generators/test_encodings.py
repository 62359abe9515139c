"""Integer encodings of the searchable generators: hand-checked codes, decode(encode(p)) == p,
encode(decode(c)) == c, the same network for seed-drawn specs, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from unnas.errors import UserError
from unnas.generators import nds
from unnas.references import structure_of
from unnas.spec import ArchSpec, build
from unnas.strategies.base import SearchSpace

SEARCHABLE = ["macro", "nb201", "nds-darts", "nds-nasnet", "nds-amoeba", "nds-pnas", "nds-enas", "anynet",
              "nds-resnet", "nds-resnext-a", "nds-resnext-b"]


def test_macro_codes_are_the_digits():
    space = SearchSpace("macro")
    assert space.cardinalities == [3] * 8 and space.size == 6561
    assert space.encode(ArchSpec("macro", {"arch": "02012100"})).tolist() == [0, 2, 0, 1, 2, 1, 0, 0]
    assert space.decode([2, 2, 2, 1, 1, 1, 0, 0]).params == {"arch": "22211100", "width": 0.25}


def test_nb201_codes_are_the_op_indices_per_edge():
    space = SearchSpace("nb201", {"width": 0.25})
    assert space.cardinalities == [5] * 6 and space.size == 15625
    arch = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|"
    # OPS = none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3; edges 0-1, 0-2, 1-2, 0-3, 1-3, 2-3
    assert space.encode(ArchSpec("nb201", {"arch": arch})).tolist() == [3, 0, 1, 4, 2, 3]
    assert space.decode([3, 0, 1, 4, 2, 3]).params == {"arch": arch, "width": 0.25, "cells": 1}


def test_nds_darts_codes_by_hand():
    space = SearchSpace("nds-darts", {"width": 16, "depth": 8})
    cell = [1, 8, 8, 3, 8, 8, 6, 8, 8, 10, 8, 8]  # per node: input pair (C(k+2, 2)), two ops
    assert space.cardinalities == cell * 2
    # DARTS-V2's normal cell: (sep3, 0), (sep3, 1) | (sep3, 0), (sep3, 1) | (sep3, 1), (skip, 0) | (skip, 0), (dil3, 2)
    # ops: none 0, max_pool 1, avg_pool 2, skip 3, sep3 4, sep5 5, dil3 6, dil5 7
    # pairs of node 2 (4 inputs): (0,1) (0,2) (0,3) (1,2) (1,3) (2,3); node 3: ... (0,2) is index 1
    codes = space.encode(ArchSpec("nds-darts", {"genotype": "darts_v2", "width": 16, "depth": 8})).tolist()
    assert codes[:12] == [0, 4, 4, 0, 4, 4, 0, 3, 4, 1, 3, 6]
    spec = space.decode(codes)
    assert spec.params["genotype"].startswith("normal:sep_conv_3x3~0,sep_conv_3x3~1,sep_conv_3x3~0,sep_conv_3x3~1,"
                                              "skip_connect~0,sep_conv_3x3~1,skip_connect~0,dil_conv_3x3~2;")
    named = nds.parse_genotype("darts_v2", "darts")  # the same network, edges of node 2 in input order
    assert structure_of(spec) != nds.format_genotype(*named) and space.encode(spec).tolist() == codes


@pytest.mark.parametrize("generator", SEARCHABLE)
def test_round_trips(generator):
    space = SearchSpace(generator)
    rng = np.random.default_rng(0)
    for _ in range(20):
        drawn = space.sample(rng)  # possibly seed-drawn (genotype "")
        codes = space.encode(drawn)
        assert all(0 <= c < k for c, k in zip(codes, space.cardinalities)) and len(codes) == len(space.cardinalities)
        canon = space.decode(codes)
        assert structure_of(canon) == structure_of(drawn)  # the same network
        assert space.decode(space.encode(canon)) == canon  # decode(encode(p)) == p
        assert space.canonical(canon) == canon
    for codes in space.sample_codes(rng, 20):  # encode(decode(c)) == c
        assert space.encode(space.decode(codes)).tolist() == codes.tolist()


@pytest.mark.parametrize("spec", [ArchSpec("macro", {}, 5), ArchSpec("nb201", {}, 9), ArchSpec("nds-darts", {}, 3),
                                  ArchSpec("nds-pnas", {"genotype": ""}, 11), ArchSpec("anynet", {"depths": [2, 1, 3]})])
def test_structure_without_building_equals_the_built_one(spec):
    assert structure_of(spec) == build(spec, 3).structure


@pytest.mark.parametrize("generator,base", [("macro", {"arch": "00000000"}), ("nds-darts", {"genotype": "darts"}),
                                            ("anynet", {"depths": [1, 1, 1]})])
def test_a_searched_parameter_cannot_be_fixed(generator, base):
    with pytest.raises(UserError, match="cannot be fixed"):
        SearchSpace(generator, base).cardinalities


def test_bad_codes_and_unencodable_networks_are_clear_errors():
    space = SearchSpace("macro")
    with pytest.raises(UserError, match="generator macro encoding: 7 positions"):
        space.decode([0] * 7)
    with pytest.raises(UserError, match="position 3 is 3"):
        space.decode([0, 0, 0, 3, 0, 0, 0, 0])
    twice = "normal:" + ",".join(["sep_conv_3x3~0"] * 8) + ";reduce:" + ",".join(["sep_conv_3x3~1"] * 8)
    with pytest.raises(UserError, match="node 0 reads input 0 twice"):
        SearchSpace("nds-darts").encode(ArchSpec("nds-darts", {"genotype": twice}))
    with pytest.raises(UserError, match="widths"):
        SearchSpace("anynet").encode(ArchSpec("anynet", {"widths": [8, 12, 16]}))
    with pytest.raises(UserError, match="cannot be searched"):
        SearchSpace("randwire-ws").encode(ArchSpec("randwire-ws"))


def test_uniform_codes_match_the_population_sampler_on_darts_pairs():
    # DARTS draws two distinct inputs, sorted: uniform over the C(k+2, 2) pairs, as uniform codes
    space = SearchSpace("nds-darts")
    rng = np.random.default_rng(0)
    pos = 9  # node 3's input pair: 10 values
    counts = np.bincount([space.encode(space.sample(rng))[pos] for _ in range(2000)], minlength=10)
    assert counts.min() > 150 and counts.max() < 250  # binomial(2000, 0.1): mean 200, sd 13.4
