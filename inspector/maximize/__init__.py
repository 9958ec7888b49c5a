"""Activation maximization: from noise, climb the gradient until an image excites a unit.

    gen = maximize(access, "relu3", [0, 1, 2], MaximizeConfig(steps=128), to_input, (128, 128))
    for progress in gen: ...          # or: result = run_to_end(gen)

Lucid's recipe in numpy: Fourier parameterization with decorrelated colour, random pad/jitter/
scale/rotate each step, Adam; gradients from ModelAccess.backward, pulled back exactly.
"""

from __future__ import annotations

from collections.abc import Generator

from inspector.maximize.config import Climb, MaximizeConfig, Step
from inspector.maximize.loop import maximize
from inspector.maximize.objectives import Term


def run_to_end(gen: Generator[Step, None, Climb]) -> Climb:
    """Drive a maximize() generator to its end and return its result (in-process use)."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


__all__ = ["Climb", "MaximizeConfig", "Step", "Term", "maximize", "run_to_end"]
