"""The one policy behind `implementation="auto"`, for every device kind and backend."""

import itertools

import pytest

from mrrn_keras.layers.recurrence import (
    AUTO_RULES,
    BACKENDS,
    AutoRule,
    DEVICE_KINDS,
    IMPLEMENTATIONS,
    Plan,
    choose_plan,
)

# (device, backend) pairs the policy covers; PyTorch has no TPU backend.
COVERED = [(d, b) for d, b in itertools.product(DEVICE_KINDS, BACKENDS) if (d, b) != ("tpu", "torch")]


def test_rules_cover_every_device_and_backend():
    assert sorted(AUTO_RULES) == sorted(COVERED)


@pytest.mark.parametrize("device, backend", [c for c in COVERED if c[0] != "cpu"])
@pytest.mark.parametrize("steps", (1, 16, 64, 2048, None))
def test_accelerators_scan_the_2017_form_at_every_length(device, backend, steps):
    plan = choose_plan("auto", state_gates=False, steps=steps, device=device, backend=backend)
    assert plan == Plan("scan")


@pytest.mark.parametrize("device, backend", [("gpu", "jax"), ("gpu", "tensorflow"), ("tpu", "jax")])
def test_accelerators_unroll_the_loop_for_state_gates(device, backend):
    plan = choose_plan("auto", state_gates=True, steps=64, device=device, backend=backend)
    assert plan == Plan("loop", unroll=8)


@pytest.mark.parametrize("backend", ("tensorflow", "jax"))
@pytest.mark.parametrize("state_gates", (True, False))
@pytest.mark.parametrize("steps", (1, 64, 2048, None))
def test_cpu_keeps_the_measured_loop(backend, state_gates, steps):
    plan = choose_plan("auto", state_gates=state_gates, steps=steps, device="cpu", backend=backend)
    assert plan == Plan("loop", unroll=AUTO_RULES[("cpu", backend)].loop_unroll)


@pytest.mark.parametrize("backend", ("tensorflow", "jax"))
def test_cpu_rules_are_the_measured_ones(backend):
    # docs/benchmarks.md section 5: on CPU neither the scan nor unrolling the
    # loop 2, 4 or 8 steps beat the plain loop in two runs on either backend.
    assert AUTO_RULES[("cpu", backend)] == AutoRule(scan_min_steps=None, loop_unroll=1)


def test_a_crossover_threshold_needs_a_known_length():
    rule = AUTO_RULES[("cpu", "torch")]
    assert rule.scan_min_steps > 1  # the case below is about a real threshold
    for steps, method in ((rule.scan_min_steps - 1, "loop"), (rule.scan_min_steps, "scan"), (None, "loop")):
        plan = choose_plan("auto", state_gates=False, steps=steps, device="cpu", backend="torch")
        assert plan.method == method


@pytest.mark.parametrize("device, backend", COVERED)
def test_explicit_implementations_are_honoured(device, backend):
    context = dict(steps=64, device=device, backend=backend)
    assert choose_plan("xla", state_gates=True, **context) == Plan("loop", jit_compile=True)
    assert choose_plan("graph", state_gates=True, **context) == Plan("loop", jit_compile=False)
    assert choose_plan("reference", state_gates=True, **context) == Plan("reference")
    assert choose_plan("scan", state_gates=False, **context) == Plan("scan")
    with pytest.raises(ValueError, match="state_gates=True"):
        choose_plan("scan", state_gates=True, **context)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(implementation="cuda"), "implementation"),
        (dict(device="npu"), "device"),
        (dict(backend="numpy"), "backend"),
        (dict(device="tpu", backend="torch"), "device"),
    ],
)
def test_unknown_values_name_themselves(kwargs, name):
    args = {"implementation": "auto", "device": "cpu", "backend": "jax", **kwargs}
    implementation = args.pop("implementation")
    with pytest.raises(ValueError, match=f"Received: {name}="):
        choose_plan(implementation, state_gates=False, steps=8, **args)


def test_implementation_names():
    assert IMPLEMENTATIONS == ("auto", "xla", "graph", "scan", "reference")
