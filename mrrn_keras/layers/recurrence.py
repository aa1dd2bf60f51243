"""The SRU's sequential part: which algorithm runs it, on which backend.

An SRU computes everything but one elementwise recurrence in parallel over
time. With ``U = x W`` for all steps at once, that recurrence is

    f_t = sigmoid(uf_t + v_f * c_{t-1})          (uf already holds b_f)
    c_t = c_{t-1} + m_t * (1 - f_t) * (uc_t - c_{t-1})

with ``m_t`` 1 for a real step and 0 for a masked one. Three algorithms
evaluate it, each with the same numerics on every backend:

- ``loop``: one step after another (an XLA while loop / ``lax.scan``), with a
  hand-written backward recurrence, optionally unrolled ``unroll`` steps per
  iteration. Any ``v_f``.
- ``scan``: a parallel (associative) scan of the linear recurrence
  ``c_t = a_t c_{t-1} + b_t``; only for ``v_f = 0`` (the 2017 SRU,
  ``state_gates=False``). ``O(log T)`` dependent steps.
- ``reference``: the whole SRU step by step, differentiated by autodiff; the
  oracle the others are tested against.

The backend modules hold the code (``recurrence_tf``: TF loops and
``tf.custom_gradient``; ``recurrence_jax``: ``lax.scan`` /
``lax.associative_scan`` and ``jax.custom_vjp``; ``recurrence_ops``: plain
``keras.ops``, differentiated by autodiff, for PyTorch). Each is imported
only when its backend is active, so TensorFlow is never loaded under JAX.

``choose_plan`` is the one policy that maps a layer's ``implementation``
onto an algorithm; ``AUTO_RULES`` holds every measured constant it uses.
"""

import dataclasses
import functools
import importlib

import keras

IMPLEMENTATIONS = ("auto", "xla", "graph", "scan", "reference")
DEVICE_KINDS = ("cpu", "gpu", "tpu")
BACKENDS = ("tensorflow", "jax", "torch")


@dataclasses.dataclass(frozen=True)
class Plan:
    """How one SRU call runs its recurrence.

    Attributes:
        method: `"loop"`, `"scan"` or `"reference"` (module docstring).
        unroll: time steps per loop iteration (`"loop"` only).
        jit_compile: TensorFlow only: XLA-compile the loop and scan functions;
            `False` gives plain graph loops (what TF Serving runs by default).
            JAX always compiles; PyTorch never does.
    """

    method: str
    unroll: int = 1
    jit_compile: bool = True


@dataclasses.dataclass(frozen=True)
class AutoRule:
    """What `implementation="auto"` does on one (device kind, backend).

    Attributes:
        scan_min_steps: with `state_gates=False` and the sequence length known
            when traced, use the parallel scan from this many steps on; `None`
            never does.
        loop_unroll: time steps per iteration of the loop otherwise.
    """

    scan_min_steps: int | None
    loop_unroll: int


# Every constant behind "auto", with the measurement that set it.
# - GPU/TPU: on an NVIDIA H200 (JAX's XLA, float32, d=512, issue 10's table)
#   the loop is launch-bound at about 23 us per step, 7.5x (B32 T64) to 32x
#   (B8 T512) the SRU's own matmul, while the parallel scan stays at
#   1.23-1.46x for T = 64..2048; the loop unrolled 8 steps per iteration
#   measured 1.46x/2.29x (fwd / fwd+bwd) at B32 T64 (the state-gate form
#   needs the loop). TPUs are not measured and follow the GPU: both pay per
#   launched step.
# - CPU, TensorFlow: the scan was nowhere faster than the XLA loop on 2 cores
#   up to T=2048 (SRU docstring, docs/benchmarks.md), nor was the loop
#   unrolled 2, 4 or 8 steps: `python bench/sru.py --shapes
#   32x64x512,8x512x512,8x2048x512 --candidates floor,sru_xla,sru_unroll2,
#   sru_unroll4,sru_unroll8,paper_xla,paper_unroll2,paper_unroll4,
#   paper_unroll8 --repeats 5 --budget_s 2 --outer_jit`, run twice: no unroll
#   factor ahead of the plain loop in both runs (docs/benchmarks.md, 5.3).
# - CPU, JAX: the same on 2 cores: `KERAS_BACKEND=jax python bench/sru.py`
#   with the candidates above plus paper_scan, B in {1, 8, 32}, T in
#   {16, 64, 512, 2048}, d=512, run twice: neither unrolling nor the scan beat
#   the lax.scan loop consistently (an alternative was ahead by > 0.05x of
#   the floor in both runs in 2 of 36 shape x pass cells, each a different
#   one: docs/benchmarks.md, 5.1).
# - CPU, PyTorch: both run on keras.ops with autodiff; the loop is a Python
#   loop of small ops (keras.ops.scan), whose backward grows fastest. One
#   rough run on 2 cores under load 6 (B8 d512, fwd+bwd, ms, loop / scan):
#   T16 191-311 / 526-1382, T32 413 / 964, T64 1327 / 223, T512 15372 / 2876;
#   so the scan from T=64. Unrolling does not apply.
AUTO_RULES = {
    ("cpu", "tensorflow"): AutoRule(scan_min_steps=None, loop_unroll=1),
    ("cpu", "jax"): AutoRule(scan_min_steps=None, loop_unroll=1),
    ("cpu", "torch"): AutoRule(scan_min_steps=64, loop_unroll=1),
    ("gpu", "tensorflow"): AutoRule(scan_min_steps=1, loop_unroll=8),
    ("gpu", "jax"): AutoRule(scan_min_steps=1, loop_unroll=8),
    ("gpu", "torch"): AutoRule(scan_min_steps=1, loop_unroll=1),
    ("tpu", "tensorflow"): AutoRule(scan_min_steps=1, loop_unroll=8),
    ("tpu", "jax"): AutoRule(scan_min_steps=1, loop_unroll=8),
}


def check_scan(implementation: str, state_gates: bool) -> None:
    """Raises `ValueError` for the scan with state gates (it needs `v_f = 0`)."""
    if implementation == "scan" and state_gates:
        raise ValueError(
            "`implementation='scan'` needs the linear recurrence of "
            "`state_gates=False`; use 'auto', 'xla' or 'graph' with state "
            f"gates. Received: implementation={implementation!r}, "
            f"state_gates={state_gates!r}"
        )


def choose_plan(
    implementation: str,
    *,
    state_gates: bool,
    steps: int | None,
    device: str,
    backend: str,
) -> Plan:
    """Maps an SRU's `implementation` onto the algorithm that runs it.

    Explicit names are honoured everywhere (`"xla"` and `"graph"` are the
    loop compiled or not; on JAX and PyTorch both are the backend's loop).
    `"auto"` follows `AUTO_RULES[(device, backend)]`.

    Args:
        implementation: one of `IMPLEMENTATIONS`.
        state_gates: whether the gates read `c_{t-1}` (then no scan).
        steps: the sequence length if known when traced, else `None` (a
            TF graph traced for any length); `None` never selects the scan
            on CPU, where a rule's threshold needs the length.
        device: `"cpu"`, `"gpu"` or `"tpu"` (`device_kind()`).
        backend: `"tensorflow"`, `"jax"` or `"torch"`.

    Returns:
        A `Plan`.

    Raises:
        ValueError: an unknown implementation, device or backend, the scan
            with `state_gates=True`, or a device the backend does not run on.

    Example:

    >>> choose_plan("auto", state_gates=False, steps=64, device="gpu", backend="jax")
    Plan(method='scan', unroll=1, jit_compile=True)
    >>> choose_plan("auto", state_gates=True, steps=64, device="gpu", backend="jax")
    Plan(method='loop', unroll=8, jit_compile=True)
    >>> choose_plan("auto", state_gates=False, steps=64, device="cpu", backend="tensorflow")
    Plan(method='loop', unroll=1, jit_compile=True)
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"`implementation` must be one of {IMPLEMENTATIONS}. "
            f"Received: implementation={implementation!r}"
        )
    check_scan(implementation, state_gates)
    for name, value, known in (("device", device, DEVICE_KINDS), ("backend", backend, BACKENDS)):
        if value not in known:
            raise ValueError(f"`{name}` must be one of {known}. Received: {name}={value!r}")
    rule = AUTO_RULES.get((device, backend))
    if rule is None:
        raise ValueError(
            f"The {backend} backend does not run on a {device}. "
            f"Received: device={device!r}, backend={backend!r}"
        )
    if implementation == "reference":
        return Plan("reference")
    if implementation == "scan":
        return Plan("scan")
    if implementation in ("xla", "graph"):
        return Plan("loop", jit_compile=implementation == "xla")
    if not state_gates and rule.scan_min_steps is not None:
        # On an accelerator the scan wins at every length, known or not (a TF
        # graph traced for any T takes its Hillis-Steele form).
        if rule.scan_min_steps <= 1 or (steps is not None and steps >= rule.scan_min_steps):
            return Plan("scan")
    return Plan("loop", unroll=rule.loop_unroll)


@functools.cache
def device_kind(backend: str | None = None) -> str:
    """The kind of device the backend computes on by default.

    Args:
        backend: a Keras backend name; defaults to the active one.

    Returns:
        `"tpu"`, `"gpu"` or `"cpu"`.
    """
    backend = backend or keras.backend.backend()
    if backend == "jax":
        import jax

        platform = jax.default_backend()
        return platform if platform in DEVICE_KINDS else "gpu"
    if backend == "tensorflow":
        import tensorflow as tf

        for kind in ("tpu", "gpu"):
            if tf.config.list_logical_devices(kind.upper()):
                return kind
        return "cpu"
    if backend == "torch":
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    return "cpu"


def backend_module():
    """The recurrence module of the active Keras backend.

    Raises:
        NotImplementedError: a backend without an SRU recurrence.
    """
    backend = keras.backend.backend()
    modules = {
        "tensorflow": "recurrence_tf",
        "jax": "recurrence_jax",
        "torch": "recurrence_ops",
    }
    if backend not in modules:
        raise NotImplementedError(
            f"The SRU runs on the tensorflow, jax and torch backends of Keras; "
            f"the active backend is {backend!r}. Set KERAS_BACKEND to one of those."
        )
    return importlib.import_module(f"mrrn_keras.layers.{modules[backend]}")


def c_sequence(plan: Plan, uc, uf, vf, mask, c0):
    """Runs the c-recurrence as `plan` says, with its gradient.

    Args:
        plan: a `Plan` whose method is `"loop"` or `"scan"`.
        uc: float32 `(B, T, U)`, candidate projection of the inputs.
        uf: float32 `(B, T, U)`, forget-gate projection plus its bias.
        vf: float32 `(U,)`, forget-gate weights on `c_{t-1}` (ignored by the
            scan, which is only chosen when they are absent).
        mask: float32 `(B, T, 1)` of 0/1; masked steps carry c unchanged.
            Treated as a constant (no gradient).
        c0: float32 `(B, U)` initial state.

    Returns:
        float32 `(B, T, U)`: `c_t` for every step.
    """
    module = backend_module()
    if plan.method == "scan":
        return module.scan_recurrence(uc, uf, mask, c0, jit_compile=plan.jit_compile)
    return module.c_recurrence(
        uc, uf, vf, mask, c0, unroll=plan.unroll, jit_compile=plan.jit_compile
    )
