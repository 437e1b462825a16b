"""Multi-task learning methods: loss balancers (chosen by name) and PopArt normalisation."""

from __future__ import annotations

from multiq.mtl.base import Balancer, shared_params
from multiq.mtl.fixed import FixedWeights
from multiq.mtl.gradnorm import GradNorm
from multiq.mtl.pcgrad import PCGrad, project_conflicting
from multiq.mtl.popart import PopArt
from multiq.mtl.uncertainty import UncertaintyWeighting
from multiq.registry import lookup

BALANCERS: dict[str, type[Balancer]] = {
    "fixed": FixedWeights,
    "uncertainty": UncertaintyWeighting,
    "gradnorm": GradNorm,
    "pcgrad": PCGrad,
}


def build_balancer(name: str, gradnorm_alpha: float = 1.5) -> Balancer:
    """Builds a loss balancer from the registry (see `Balancer`; the learner feeds it params)."""
    cls = lookup(BALANCERS, name, "balancer", "balancers")
    return cls(gradnorm_alpha=gradnorm_alpha)


__all__ = [
    "BALANCERS",
    "Balancer",
    "PopArt",
    "build_balancer",
    "project_conflicting",
    "shared_params",
]
