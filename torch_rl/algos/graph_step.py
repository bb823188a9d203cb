"""``compile=True`` on a CPU: a whole gradient step (loss, gradient, clipping, optimizer step) as one graph.

Compiled apart, the mini-batch loss, the clipping and the optimizer's step are three compiled calls with autograd's
engine between them. At small batches their fixed cost is more than a small model's arithmetic: a step of the MLP
of ``benchmarks.training_sweep`` on 256 rows took about 1.35 ms that way and 0.85 ms as one graph (docs/speed.md).
``GraphStep`` is that step as one function, for torch.compile to make one graph of:

- the gradient comes from ``torch.func.grad`` over ``torch.func.functional_call`` of the algorithm's own
  ``batch_loss``, since ``loss.backward()`` and ``optimizer.step()`` each break a compiled graph;
- it is clipped as ``clip_grad_norm_`` clips, with torch's ``get_total_norm``;
- the step is the optimizer's own algorithm, torch's functional Adam or RMSprop, on the optimizer's state tensors
  (so checkpoints and ``optimizer.state_dict()`` are unchanged);
- where the gradient's norm is not finite, the parameters and the optimizer's state are put back as they were, and
  the caller raises: as on the eager path, which raises before its step, a bad batch changes nothing.

``GraphStep.usable`` says where it applies: the algorithms' own optimizers (Adam, RMSprop) with one parameter group
and a constant learning rate (a changing one would be compiled again at each change), every parameter of the model
in it and each with a state (so that the step's first call, which makes the state, stays eager: see
``BaseAlgo.optimize_batch``). Elsewhere, on CUDA (where the three graphs are replayed as CUDA graphs) and under
torch.distributed (gradients are averaged between the backward and the step), the three graphs remain.
"""

import torch
from torch import nn
from torch.optim.adam import adam
from torch.optim.rmsprop import rmsprop


class _BatchLoss(nn.Module):
    """``batch_loss(exps, starts)`` as a module whose one submodule is the model: what functional_call needs to run
    it with the parameters that torch.func.grad differentiates."""

    def __init__(self, model: nn.Module, batch_loss):
        super().__init__()
        self.model = model
        self.batch_loss = batch_loss

    def forward(self, exps, starts):
        return self.batch_loss(exps, starts)


class GraphStep:
    """One gradient step of ``model`` on a mini-batch: ``step(exps, starts, self.states()) -> (loss, grad_norm,
    stats)``, with the parameters and ``optimizer``'s state updated in place (left as they were where ``grad_norm``
    is not finite)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, batch_loss, max_grad_norm: float):
        self.optimizer = optimizer
        self.max_grad_norm = max_grad_norm
        self.names = [name for name, p in model.named_parameters() if p.requires_grad]
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.loss_module = _BatchLoss(model, batch_loss)

    @staticmethod
    def usable(model: nn.Module, optimizer: torch.optim.Optimizer, constant_lr: bool) -> bool:
        if type(optimizer) not in (torch.optim.Adam, torch.optim.RMSprop) or len(optimizer.param_groups) != 1:
            return False
        group = optimizer.param_groups[0]
        if group.get("maximize") or group.get("differentiable") or group.get("amsgrad"):
            return False
        if group.get("decoupled_weight_decay"):
            return False
        trainable = [p for p in model.parameters() if p.requires_grad]
        in_group = {id(p) for p in group["params"]}
        return constant_lr and {id(p) for p in trainable} == in_group and all(p in optimizer.state for p in trainable)

    def states(self) -> list[dict]:
        """Each parameter's optimizer state, as a plain dict of its tensors: what ``step`` takes. Read at each call
        (a checkpoint's load replaces them) and handed in as an argument: read inside the graph, the optimizer's
        state (a dict keyed by tensors) needs guards that cost about 100 us a call."""
        return [dict(self.optimizer.state[p]) for p in self.params]

    def step(self, exps, starts, states):
        def loss_of(values):
            prefixed = {f"model.{name}": value for name, value in zip(self.names, values, strict=True)}
            loss, stats = torch.func.functional_call(self.loss_module, prefixed, (exps, starts))
            return loss, (loss.detach(), stats)

        values = [p.detach() for p in self.params]
        grads, (loss, stats) = torch.func.grad(loss_of, has_aux=True)(values)
        grad_norm = torch.nn.utils.get_total_norm(grads)
        clip = clip_coefficient(self.max_grad_norm, grad_norm)
        grads = [grad * clip for grad in grads]
        finite = torch.isfinite(grad_norm)
        with torch.no_grad():
            kept = self.params + [tensor for state in states for tensor in state.values()]
            before = [tensor.clone() for tensor in kept]
            self._optimizer_step(grads, states)
            for tensor, old in zip(kept, before, strict=True):
                tensor.copy_(torch.where(finite, tensor, old))
        return loss, grad_norm, stats

    def _optimizer_step(self, grads, states):
        """The optimizer's step by torch's functional form of it (single-tensor: Inductor fuses it; capturable
        while compiled: the step counts stay tensors in the graph). It also runs eagerly, as torch.compile runs a
        function once its recompile limit is reached (e.g. after several algorithms in one process)."""
        group = self.optimizer.param_groups[0]
        steps = [state["step"] for state in states]
        capturable = torch.compiler.is_compiling()  # eager torch refuses it on a CPU
        if isinstance(self.optimizer, torch.optim.Adam):
            beta1, beta2 = group["betas"]
            adam(
                self.params,
                grads,
                [state["exp_avg"] for state in states],
                [state["exp_avg_sq"] for state in states],
                [],
                steps,
                foreach=False,
                capturable=capturable,
                amsgrad=False,
                beta1=beta1,
                beta2=beta2,
                lr=group["lr"],
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=False,
            )
        else:
            momentum, centered = group["momentum"], group["centered"]
            rmsprop(
                self.params,
                grads,
                [state["square_avg"] for state in states],
                [state["grad_avg"] for state in states] if centered else [],
                [state["momentum_buffer"] for state in states] if momentum > 0 else [],
                steps,
                foreach=False,
                capturable=capturable,
                lr=group["lr"],
                alpha=group["alpha"],
                eps=group["eps"],
                weight_decay=group["weight_decay"],
                momentum=momentum,
                centered=centered,
            )


def clip_coefficient(max_norm: float, norm: torch.Tensor) -> torch.Tensor:
    """What ``clip_grad_norm_`` scales the gradients by, for their global ``norm``: at most 1."""
    return torch.clamp(max_norm / (norm + 1e-6), max=1.0)
