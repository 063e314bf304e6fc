"""matbackprop.validation: the shared checks, on the inputs where a cheap check could be wrong."""

import re

import pytest
import torch

from matbackprop.validation import check_finite, check_number


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", [0, 1, 4097, -1])
def test_check_finite_finds_one_bad_entry_anywhere(dtype, bad, where):
    x = torch.rand(64, 130, dtype=torch.float64).to(dtype)
    x.view(-1)[where] = bad
    with pytest.raises(ValueError, match=r"`x` must be finite, got 1 non-finite entries"):
        check_finite(x, "x")


def test_check_finite_counts_and_sees_through_views():
    x = torch.rand(40, 60)
    x[3, 5] = float("nan")
    x[7, 59] = float("inf")
    with pytest.raises(ValueError, match="got 2 non-finite"):
        check_finite(x, "x")
    with pytest.raises(ValueError, match="got 1 non-finite"):
        check_finite(x[:, :30].mT, "x")  # a strided view holding only the NaN
    check_finite(x[10:], "x")  # the view without either


def test_check_finite_accepts_finite_extremes_whose_sum_overflows():
    big = torch.finfo(torch.float64).max
    check_finite(torch.tensor([big, big, -big], dtype=torch.float64), "x")
    check_finite(torch.full((1000,), torch.finfo(torch.float32).max), "x")


def test_check_finite_other_dtypes():
    check_finite(torch.arange(5), "x")  # integers are always finite
    check_finite(torch.empty(0, 3), "x")
    with pytest.raises(ValueError, match="got 1 non-finite"):
        check_finite(torch.tensor([1 + 1j, complex(float("nan"), 0)]), "x")


@pytest.mark.parametrize(
    "kwargs, value, message",
    [
        ({"minimum": 0, "maximum": 1}, 1.5, "`x` must be a finite number in [0, 1], got 1.5"),
        ({"minimum": 0, "maximum": 1}, -0.5, "`x` must be a finite number in [0, 1], got -0.5"),
        ({"maximum": 2}, 3, "`x` must be a finite number <= 2, got 3"),
        ({"minimum": 0, "maximum": 1}, float("nan"), "`x` must be a finite number in [0, 1]"),
        ({"minimum": 0, "maximum": 1}, True, "`x` must be a finite number in [0, 1]"),
    ],
)
def test_check_number_bounds(kwargs, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_number(value, "x", **kwargs)
    assert check_number(kwargs.get("minimum", 0), "x", **kwargs) == kwargs.get("minimum", 0)
    assert check_number(kwargs["maximum"], "x", **kwargs) == kwargs["maximum"]


@pytest.mark.parametrize(
    "kwargs, bad, message",
    [
        ({"minimum": 0, "below": 1}, [1, 1.5, -0.1], "`x` must be a finite number in [0, 1)"),
        ({"positive": True, "below": 1}, [0, 1, -1], "`x` must be a finite number in (0, 1)"),
        ({"below": 2}, [2, 3, float("inf")], "`x` must be a finite number < 2"),
    ],
)
def test_check_number_strict_upper_bound(kwargs, bad, message):
    for value in bad:
        with pytest.raises(ValueError, match=re.escape(f"{message}, got {value!r}")):
            check_number(value, "x", **kwargs)
    assert check_number(0.5, "x", **kwargs) == 0.5
    assert check_number(1 - 1e-12, "x", **kwargs) == 1 - 1e-12
