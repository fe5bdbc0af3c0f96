"""Unit codes of sensor profiles: a documented subset of UCUM's case-sensitive syntax (ADR 0088).

A unit is ``1`` (dimensionless) or terms joined by ``.`` (product) and ``/`` (quotient), read
left to right, without parentheses. A term is an atom with an optional
integer exponent (``m2``, ``s-1``) and an optional annotation in braces (``%{RH}``), or an
annotation alone (``{count}``). An atom is:

- a metric unit, optionally after one SI prefix: ``m g s A K mol cd rad sr Hz N Pa J W C V F
  Ohm S Wb T H Cel lm lx Bq Gy Sv L l bar eV B t m[Hg]`` with ``Y Z E P T G M k h da d c m u n p f a
  z y`` (``hPa``, ``kW``, ``mV``, ``ug``, ``dB``, ``mm[Hg]``);
- or a unit that takes no prefix: ``% min h d wk mo a deg '' ' [ppm] [ppb] [ppth] [pH]
  [degF] [in_i] [ft_i] [mi_i] [psi] [kn_i] [mm_i] [lb_av] [gal_us] [IU] [iU] [drp] [HP]``
  and ``Ao`` (angström).

So ``Cel``, ``%``, ``hPa``, ``kW.h``, ``m/s``, ``ug/m3``, ``km/h``, ``m/s2``, ``%{RH}``,
``[ppm]``, ``dB``, ``1`` are accepted; ``°C``, ``degC``, ``kwh`` (UCUM is case-sensitive),
``m//s`` are not. The list is the common part of the units IoT sensors report, not all of UCUM
(no arbitrary ``10*3`` factors, no parentheses): a unit outside it is a ``validation_error``
naming the rule, and the list grows by addition.
"""

from __future__ import annotations

import re

# Space-separated, so each list reads like the module's doc.
PREFIXES = tuple("da Y Z E P T G M k h d c m u n p f a z y".split(" "))  # noqa: SIM905
METRIC = frozenset(
    "m g s A K mol cd rad sr Hz N Pa J W C V F Ohm S Wb T H Cel lm lx Bq Gy Sv L l bar "  # noqa: SIM905
    "eV B t m[Hg]".split(" ")
)
UNPREFIXED = frozenset(
    "% min h d wk mo a deg '' ' [ppm] [ppb] [ppth] [pH] [degF] [in_i] [ft_i] [mi_i] [psi] "  # noqa: SIM905
    "[kn_i] [mm_i] [lb_av] [gal_us] [IU] [iU] [drp] [HP] Ao".split(" ")
)
MAX_LENGTH = 32

_TERM = re.compile(r"(?P<atom>[^{}\d.\-/]+?)?(?P<exp>-?\d+)?(?P<annotation>\{[!-z|~]*\})?")


def _atom_ok(atom: str) -> bool:
    if atom in METRIC or atom in UNPREFIXED:
        return True
    return any(atom.startswith(p) and atom[len(p) :] in METRIC for p in PREFIXES)


def _term_ok(term: str) -> bool:
    match = _TERM.fullmatch(term)
    if match is None or not term:
        return False
    atom, exponent, annotation = match.group("atom", "exp", "annotation")
    if atom is None:
        return exponent is None and annotation is not None
    return _atom_ok(atom)


def is_unit(code: str) -> bool:
    """Whether ``code`` is an accepted unit code (see the module's doc)."""
    if not code or len(code) > MAX_LENGTH or not code.isascii() or code.isspace():
        return False
    if code == "1":
        return True
    terms = re.split(r"[./]", code)
    return all(_term_ok(t) for t in terms)
