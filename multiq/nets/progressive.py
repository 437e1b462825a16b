"""`progressive`: a column per task with lateral adapters from every earlier column (Rusu et al.
2016, "Progressive Neural Networks").

Each task owns a column: an input layer, a body (the encoder family's, as every scheme builds
it) and a Q head. Layer i of column k takes, besides its own layer i-1, every earlier column j's
layer i-1 activation through an adapter ``U relu(V (alpha h_j))``: alpha a learned scalar
(`ALPHA_INIT`), V a dimensionality reduction (a 1x1 convolution on feature maps, a linear map on
vectors; `REDUCTION`) and U a layer shaped as column k's own layer i (the same convolution, or a
linear map). The head's input gets one more adapter from each earlier column's last layer.

A task added later (`add_task`) starts as a copy of the newest column: its input layer if the
observations have the same signature, its body and its adapters from the older columns; its
adapter from the column it copies starts at zero (U = 0). Its head starts random; with
`head_init: mean` (`inherit_head`) it is that column's head where the action count matches, so
the new column starts computing exactly that column's Q-values (a jumpstart) and can only add
to them. A task given to the constructor gets a fresh column (the paper's random
initialisation).

Earlier columns see the new task's observations too: through their own input layer when the
signature is theirs, else through an input layer the new column owns (so a target with other
observations gets new input layers for the frozen columns). All columns take one encoder family
and body shape (observations that differ at most in channel count, as in `shared`).

Groups: ``column/<task>`` (the column's input layer, body and the input layers it owns for
earlier columns), ``lateral/<task>`` (the adapters into it), ``head/<task>``. Freezing an earlier
task's three groups (the transfer mode and continual method ``progressive`` do) keeps its
Q-values bit-identical: a column never reads a later one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from multiq.errors import TaskError
from multiq.nets.base import MultiTaskQNet
from multiq.nets.encoders import EncoderFamily, EncoderWidths, encoder_for
from multiq.nets.heads import TaskHeads, pad_columns
from multiq.nets.inputs import signature
from multiq.tasks.spec import TaskSpec

ALPHA_INIT = 0.1  # the adapters' learned scale starts small (Rusu et al. 2016)
REDUCTION = 2  # V maps C channels (or D units) to max(1, C // REDUCTION)
SOURCE_SCHEMES = ("shared", "independent", "progressive")  # `load_source` maps these


def leaves(module: nn.Module) -> list[nn.Module]:
    """The modules of nested `nn.Sequential`s in call order."""
    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in leaves(child)]
    return [module]


Stage = tuple[list[nn.Module], nn.Module]  # (modules before the non-linearity, the non-linearity)


def split_stages(modules: Sequence[nn.Module]) -> tuple[list[Stage], list[nn.Module]]:
    """Layers split at each ReLU: [(pre-activation modules, relu)], and the modules after the
    last ReLU (e.g. a dropout), applied to the column's output."""
    stages: list[Stage] = []
    pending: list[nn.Module] = []
    for module in modules:
        if isinstance(module, nn.ReLU):
            stages.append((pending, module))
            pending = []
        else:
            pending.append(module)
    return stages, pending


def _main_layer(stage: Stage) -> nn.Module:
    layers = [m for m in stage[0] if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not layers:
        raise TaskError("progressive: a layer of the encoder has no Conv2d or Linear")
    return layers[-1]


class Lateral(nn.Module):
    """``U relu(V (alpha h))``: earlier column's activation h -> this column's pre-activation.

    Args:
        in_shape: h's shape without the batch, ``(C, H, W)`` or ``(D,)``.
        target: the layer whose pre-activation this adds to (U copies its shape: the same
            convolution, or a linear map to its units after a flatten), or a unit count.
        zero: U starts at zero (the adapter starts with no effect).
    """

    def __init__(self, in_shape: Sequence[int], target: nn.Module | int, zero: bool = False):
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(ALPHA_INIT))
        reduced = max(1, in_shape[0] // REDUCTION)
        spatial = len(in_shape) == 3
        self.V = nn.Conv2d(in_shape[0], reduced, 1) if spatial else nn.Linear(in_shape[0], reduced)
        self.U: nn.Module
        if isinstance(target, nn.Conv2d):
            if not spatial:
                raise TaskError("progressive: a convolution cannot take a vector adapter")
            shape: dict[str, Any] = {
                "kernel_size": target.kernel_size, "stride": target.stride,
                "padding": target.padding,
            }  # fmt: skip
            self.U = nn.Conv2d(reduced, target.out_channels, **shape)
        else:
            flat = reduced * (in_shape[1] * in_shape[2] if spatial else 1)
            linear = nn.Linear(flat, _out_features(target))
            self.U = nn.Sequential(nn.Flatten(), linear) if spatial else linear
        if zero:
            for p in self.U.parameters():
                nn.init.zeros_(p)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """[B, *in_shape] -> [B, *target pre-activation shape]."""
        return self.U(torch.relu(self.V(self.alpha * h)))


def _out_features(target: nn.Module | int) -> int:
    if isinstance(target, nn.Linear):
        return target.out_features
    if isinstance(target, int):
        return target
    raise TaskError(f"progressive: no adapter for a {type(target).__name__} layer")


class Column(nn.Module):
    """One task's column: `input` and `body` (the encoder family's), the input layers it owns
    for earlier columns (`foreign`, keyed by their task), and the adapters into it
    (`laterals`: earlier task -> one `Lateral` per layer after the first, then one for the
    head's input)."""

    def __init__(self, signature: str, input_layer: nn.Module, body: nn.Sequential):
        super().__init__()
        self.signature = signature
        self.input = input_layer
        self.body = body
        self.foreign = nn.ModuleDict()
        self.laterals = nn.ModuleDict()

    def own_parameters(self) -> list[nn.Parameter]:
        modules = (self.input, self.body, self.foreign)
        return [p for m in modules for p in m.parameters()]

    def adapters(self, earlier: str) -> list[Lateral]:
        """The adapters from column `earlier`: one per layer after the first, then the head's."""
        adapters = self.laterals[earlier]
        assert isinstance(adapters, nn.ModuleList)
        return [a for a in adapters if isinstance(a, Lateral)]

    def input_for(self, earlier: str) -> nn.Module:
        """The input layer this column owns for column `earlier`."""
        return self.foreign[earlier]


class ProgressiveQNet(MultiTaskQNet):
    """A column per task (input layer, body, head) with adapters from every earlier column."""

    def __init__(
        self, tasks: Sequence[TaskSpec], widths: EncoderWidths | None = None, dueling: bool = False
    ):
        super().__init__(tasks, widths, dueling)
        self.family: EncoderFamily = encoder_for(tasks[0].observation_space, tasks[0].name)
        self.body_key = self.family.body_key(tasks[0].observation_space)
        self.columns = nn.ModuleDict()
        self.heads = TaskHeads(0, dueling)  # feature_dim: set by the first column
        self._warm_start = False  # tasks given to the constructor get fresh columns
        for spec in tasks:
            self.add_task(spec)
        self._warm_start = True

    def column(self, name: str) -> Column:
        """Task `name`'s column."""
        column = self.columns[name]
        assert isinstance(column, Column)
        return column

    # --- building ------------------------------------------------------------------------------

    def _check(self, spec: TaskSpec) -> None:
        family = encoder_for(spec.observation_space, spec.name)
        key = family.body_key(spec.observation_space)
        if family.name != self.family.name or key != self.body_key:
            first = next(iter(self.specs.values()), None)
            like = f" like task {first.name!r}'s {first.obs_shape}" if first else ""
            raise TaskError(
                f"task {spec.name!r} (observations {spec.obs_shape}) cannot join a progressive "
                f"network, whose columns take {self.family.name} observations{like} (columns "
                "need observations of one kind that differ at most in channel count); use "
                "scheme 'independent', or wrap the env to a common shape"
            )

    def _add_modules(self, spec: TaskSpec) -> None:
        self._check(spec)
        space = spec.observation_space
        body, feature_dim = self.family.body(space, self.widths)
        column = Column(signature(spec), self.family.input_layer(space, self.widths), body)
        earlier = list(self.columns)
        for name in earlier:
            if self.column(name).signature != column.signature:
                column.foreign[name] = self.family.input_layer(space, self.widths)
        shapes = self._stage_shapes(column, spec)
        stages, _ = split_stages(leaves(column.input) + leaves(column.body))
        targets = [_main_layer(stage) for stage in stages[1:]]
        for name in earlier:
            pairs = zip(shapes[:-1], targets, strict=True)
            adapters: list[nn.Module] = [Lateral(shape, target) for shape, target in pairs]
            adapters.append(Lateral(shapes[-1], feature_dim))
            column.laterals[name] = nn.ModuleList(adapters)
        self.columns[spec.name] = column
        self.heads.feature_dim = feature_dim
        self.heads.add(spec.name, spec.num_actions)
        if self._warm_start and earlier:
            self.warm_start(spec.name, earlier[-1])

    def _stage_shapes(self, column: Column, spec: TaskSpec) -> list[tuple[int, ...]]:
        """Each layer's output shape (no batch) for one zero observation of `spec`."""
        x = torch.zeros((1, *spec.obs_shape), dtype=torch.float32)
        stages, _ = split_stages(leaves(column.input) + leaves(column.body))
        shapes = []
        with torch.no_grad():
            for pre, act in stages:
                for module in pre:
                    x = module(x)
                x = act(x)
                shapes.append(tuple(x.shape[1:]))
        return shapes

    def warm_start(self, name: str, source: str) -> None:
        """Column `name` starts as a copy of column `source` (see the module docstring): the
        same input layer where the signatures match, body, adapters from the older columns; the
        adapter from `source` starts at zero. The head is `inherit_head`'s.

        Raises:
            TaskError: `source` is not a column before `name`.
        """
        order = list(self.columns)
        if source not in order or name not in order or order.index(source) >= order.index(name):
            raise TaskError(f"progressive: column {source!r} is not before column {name!r}")
        new, old = self.column(name), self.column(source)
        with torch.no_grad():
            new.body.load_state_dict(old.body.state_dict())
            for earlier in old.laterals:
                new.laterals[earlier].load_state_dict(old.laterals[earlier].state_dict())
            if new.signature == old.signature:  # then both own input layers for the same columns
                new.input.load_state_dict(old.input.state_dict())
                for earlier in old.foreign:
                    new.input_for(earlier).load_state_dict(old.input_for(earlier).state_dict())
            for adapter in new.adapters(source):
                for p in adapter.U.parameters():
                    p.zero_()

    def inherit_head(self, name: str, held: Sequence[str]) -> bool:
        """`head_init: mean`: the head of the column `name` copied (the one before it) when it
        is held and has as many actions; else False, the head left random. (The mean of heads
        over other columns' features would not match the copied body.)"""
        order = list(self.columns)
        index = order.index(name)
        if index == 0:
            return False
        source = order[index - 1]
        if source not in held or self.num_actions[source] != self.num_actions[name]:
            return False
        with torch.no_grad():
            self.heads.head(name).load_state_dict(self.heads.head(source).state_dict())
        return True

    def load_source(self, scheme: str, state: Mapping[str, torch.Tensor]) -> None:
        """Loads a trained `shared`, `independent` or `progressive` net's weights into the
        columns of its tasks: each task's column takes that task's input layer, the body and
        its head; adapters between these columns start at zero, so every such task keeps its
        Q-values (up to float rounding: the source may compute all tasks in one batch).

        Raises:
            TaskError: another scheme, or a held task that the weights do not cover.
        """
        if scheme not in SOURCE_SCHEMES:
            raise TaskError(
                f"a progressive network takes the weights of scheme {' / '.join(SOURCE_SCHEMES)}"
                f", not {scheme!r}; train the source with one of them"
            )
        signatures = {n: self.column(n).signature for n in self.columns}
        mapped = _map_state(scheme, state, signatures)
        names = {k.split(".")[1] for k in mapped if k.startswith("columns.")}
        missing = [n for n in self.specs if n not in names]
        if missing:
            raise TaskError(f"the source weights hold no column for task(s) {missing}")
        self.load_state_dict(mapped, strict=False)
        if scheme != "progressive":
            with torch.no_grad():
                for name in self.columns:
                    column = self.column(name)
                    for earlier in column.laterals:
                        for adapter in column.adapters(earlier):
                            for p in adapter.U.parameters():
                                p.zero_()

    # --- forward -------------------------------------------------------------------------------

    def _column_features(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """[B, F] the head input of task `name`'s column for its observations x."""
        order = list(self.columns)
        order = order[: order.index(name) + 1]
        own = self.column(name)
        acts: list[list[torch.Tensor]] = []  # column -> each layer's output
        features = x
        for j, col_name in enumerate(order):
            column = self.column(col_name)
            own_input = column.signature == own.signature
            first = column.input if own_input else own.input_for(col_name)
            stages, tail = split_stages(leaves(first) + leaves(column.body))
            h, outputs = x, []
            for s, (pre, act) in enumerate(stages):
                for module in pre:
                    h = module(h)
                if s > 0:
                    for i, earlier in enumerate(order[:j]):
                        h = h + column.adapters(earlier)[s - 1](acts[i][s - 1])
                h = act(h)
                outputs.append(h)
            for module in tail:
                h = module(h)
            acts.append(outputs)
            features = h
        for i, earlier in enumerate(order[:-1]):
            features = features + own.adapters(earlier)[-1](acts[i][-1])
        return features

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        outputs = [
            self.heads(self._column_features(name, x), [name], [x.shape[0]])
            for name, x in obs.items()
        ]
        if len(outputs) == 1:
            return outputs[0]
        width = max(q.shape[1] for q in outputs)
        return torch.cat([pad_columns(q, width) for q in outputs])

    # --- groups --------------------------------------------------------------------------------

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        groups: dict[str, list[nn.Parameter]] = {}
        for name in self.columns:
            column = self.column(name)
            groups[f"column/{name}"] = column.own_parameters()
            groups[f"lateral/{name}"] = list(column.laterals.parameters())
        return {**groups, **self.heads.param_groups()}

    def column_parameters(self) -> dict[str, int]:
        """Task -> weights of its column (input layers, body, adapters into it, head)."""
        groups = self.param_groups()
        return {
            name: sum(
                p.numel() for g in ("column", "lateral", "head") for p in groups[f"{g}/{name}"]
            )
            for name in self.columns
        }


def column_groups(names: Sequence[str]) -> tuple[str, ...]:
    """The groups of the columns of `names` (what freezing those tasks freezes)."""
    return tuple(f"{g}/{n}" for n in names for g in ("column", "lateral", "head"))


def _map_state(
    scheme: str, state: Mapping[str, torch.Tensor], signatures: Mapping[str, str]
) -> dict[str, torch.Tensor]:
    """A `shared` / `independent` state dict in the progressive layout, for the tasks of
    `signatures` (task -> observation signature)."""
    if scheme == "progressive":
        return dict(state)
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("heads."):
            mapped[key] = value
        elif scheme == "shared" and key.startswith("body."):
            for name in signatures:
                mapped[f"columns.{name}.{key}"] = value
        elif scheme == "shared" and key.startswith("inputs.layers."):
            sig, rest = key[len("inputs.layers.") :].split(".", 1)
            for name, own in signatures.items():
                if own == sig:
                    mapped[f"columns.{name}.input.{rest}"] = value
        elif scheme == "independent" and key.startswith("private."):
            name, part, rest = key[len("private.") :].split(".", 2)
            if name in signatures:
                mapped[f"columns.{name}.{'input' if part == '0' else 'body'}.{rest}"] = value
    return mapped
