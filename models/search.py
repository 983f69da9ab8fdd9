"""Search spaces for a hyperparameter sweep: the distributions an option is drawn from, over
what ranges, each draw the same in every process and on every machine.

Each model declares `search_space = {option: distribution}` next to its `option_ranges`; one
that declares none is tuned over OPTIMISER_SPACE, restricted to the options its constructor
takes. The registry (models/registry.py) looks a model's space up by name and draws its trials:
`draw_setting(name, k)` gives trial k's options: trial 0 is the model's defaults ({}), trial
k >= 1 one draw from the space. Only options are drawn: each method keeps its own update schedule
(D steps and batches per step). This module imports nothing of the registry, so the registry
checks a declared space at registration without an import circle.
"""
import math
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

SIGNIFICANT_DIGITS = 4  # drawn values are rounded to these, to read well in JSON and tables


def _rounded(value, rounding=ROUND_HALF_EVEN):
    """`value` to SIGNIFICANT_DIGITS significant digits, rounded as `rounding` says."""
    exact = Decimal(value)  # the float's exact binary value, so the rounding is the same everywhere
    if exact == 0:
        return 0.0
    unit = Decimal(1).scaleb(exact.adjusted() - SIGNIFICANT_DIGITS + 1)
    return float(exact.quantize(unit, rounding=rounding))


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}.")
    return float(value)


class Distribution:
    """What a search space maps an option to: `draw(rng)` returns one plain Python value and
    `text` describes the distribution for tables and docs."""

    text = ""

    def draw(self, rng):
        raise NotImplementedError

    def extremes(self):
        """The smallest and largest values `draw` can return (rounding included), for the
        registration check against the option's range; None for a non-numeric distribution."""
        return None

    def __repr__(self):
        return f"{type(self).__name__}({self.text!r})"


class Uniform(Distribution):
    """U[lo, hi): uniform on the half-open interval, as numpy draws it. The rounding to 4
    significant digits never reaches hi: a draw that would round up to it (0.99996 in U[0, 1))
    is rounded down instead (0.9999), so Uniform(0, 1) serves options whose range is [0, 1)."""

    def __init__(self, lo, hi):
        self.lo, self.hi = _number(lo, "Uniform's lo"), _number(hi, "Uniform's hi")
        if not self.lo < self.hi:
            raise ValueError(f"Uniform(lo, hi) needs lo < hi, got lo={lo!r}, hi={hi!r}.")
        if not math.isfinite(self.hi - self.lo):  # numpy draws lo + (hi - lo) * u: the width must be a float
            raise ValueError(f"Uniform(lo, hi) needs hi - lo to be a finite float, got lo={lo!r}, hi={hi!r}; "
                             "for a range over many orders of magnitude use LogUniform.")
        self.text = f"U[{self.lo:g}, {self.hi:g})"

    def __repr__(self):
        return f"Uniform({self.lo!r}, {self.hi!r})"

    def _top(self):
        """The largest value a draw returns: the largest rounded value below hi (lo itself
        where no rounded value lies between lo and hi)."""
        return max(self.lo, _rounded(math.nextafter(self.hi, self.lo), ROUND_FLOOR))

    def draw(self, rng):
        value = _rounded(rng.uniform(self.lo, self.hi))
        # The nearest 4-digit value can lie just outside [lo, hi); keep to the interval.
        return self.lo if value < self.lo else min(value, self._top())

    def extremes(self):
        return self.lo, self._top()


class LogUniform(Distribution):
    """10^U[log10 lo, log10 hi]: uniform in the exponent, so every decade of [lo, hi] is drawn
    equally often (a learning rate from 1e-5 to 1e-2). Closed: a draw rounded up to hi is hi."""

    def __init__(self, lo, hi):
        self.lo, self.hi = _number(lo, "LogUniform's lo"), _number(hi, "LogUniform's hi")
        if not self.lo > 0:
            raise ValueError(f"LogUniform(lo, hi) needs lo > 0 (it draws the exponent), got lo={lo!r}.")
        if not self.lo < self.hi:
            raise ValueError(f"LogUniform(lo, hi) needs lo < hi, got lo={lo!r}, hi={hi!r}.")
        self.text = f"10^U[{math.log10(self.lo):.3g}, {math.log10(self.hi):.3g}]"

    def __repr__(self):
        return f"LogUniform({self.lo!r}, {self.hi!r})"

    def draw(self, rng):
        value = _rounded(10 ** rng.uniform(math.log10(self.lo), math.log10(self.hi)))
        return min(max(value, self.lo), self.hi)

    def extremes(self):
        return self.lo, self.hi


class Choice(Distribution):
    """One of `values`, each equally likely, returned as declared (no rounding)."""

    def __init__(self, values):
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"Choice(values) needs a non-empty list or tuple of values, got {values!r}.")
        self.values = tuple(values)
        self.text = "one of " + ", ".join(str(v) for v in self.values)

    def __repr__(self):
        return f"Choice({list(self.values)!r})"

    def draw(self, rng):
        return self.values[int(rng.integers(len(self.values)))]

    def extremes(self):
        numbers = [v for v in self.values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return (min(numbers), max(numbers)) if len(numbers) == len(self.values) else None


# The wide ranges of Lucic et al. 2018 ("Are GANs Created Equal?"): learning rate 10^U[-5, -2],
# Adam beta1 U[0, 1]. Uniform is half-open and its rounding stays below hi (above), so beta1 keeps
# the paper's [0, 1) as written and lands inside UNIT without shrinking the range to 0.999.
OPTIMISER_SPACE = {"lr": LogUniform(1e-5, 1e-2), "adam_beta1": Uniform(0.0, 1.0)}

