import pytest

from unnas.errors import UserError
from unnas.registry import DATASETS, GENERATORS, OBJECTIVES, Registry


def test_register_get_build():
    r = Registry("widget")

    @r.register("a")
    def make(x):
        return x + 1

    assert r.get("a") is make and r.build("a", 1) == 2 and "a" in r and r.names() == ["a"]


def test_duplicate_name_is_an_error():
    r = Registry("widget")
    r.add("a", object())
    with pytest.raises(ValueError, match="already registered"):
        r.add("a", object())


def test_unknown_name_lists_registered():
    r = Registry("widget")
    r.add("alpha", 1)
    r.add("beta", 2)
    with pytest.raises(UserError) as e:
        r.get("gamma")
    assert "gamma" in str(e.value) and "alpha, beta" in str(e.value)


def test_builtin_components_registered():
    assert {"digits", "fake", "mnist", "fashion-mnist", "cifar10", "cifar100", "imagefolder"} <= set(DATASETS.names())
    assert {"randwire-ws", "resnet"} <= set(GENERATORS.names())
    assert {"supervised", "rotation"} <= set(OBJECTIVES.names())
