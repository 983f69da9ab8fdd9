"""A model's networks set up for a path (runtime.py's `prepare` and `release`): its Adams on the
path's kernels, its forwards compiled and/or wrapped in the fast path's precision rules, and
unwrapped again for checkpoints and evaluation."""
import torch
from torch import nn

from . import parallel


def set_optimizer_path(opt, fused, captured=False):
    """An Adam built by a model, set for this path whatever path wrote its checkpoint:
    `load_state_dict` restores the saved `fused` flag, and the moments keep the saved memory
    layout. The fused kernel walks gradients and moments as flat memory, so a moment whose
    layout differs from its parameter's would be paired with the wrong gradient entries.

    `captured`: the step is replayed as a graph (training/capture.py), so each learning rate is a
    tensor beside the parameters that a scheduler fills in place (a float would be frozen into the
    graph). On CUDA the fused kernel, made capturable; a CPU emulates the graph with the
    for-loop kernel, the one that takes a tensor learning rate there (float64: the same numbers as
    a float's)."""
    if not isinstance(opt, torch.optim.Adam):
        return
    device = next((p.device for g in opt.param_groups for p in g["params"]), torch.device("cpu"))
    gpu = device.type == "cuda"
    # The plain path takes the multi-tensor (foreach) kernels: on a CPU they give bit-for-bit
    # the for-loop's results (tests/benchmarks/training/test_loop_cost.py) with a few ops per step instead of about
    # ten per parameter; the fused kernel is faster still but rounds differently.
    if captured:
        kernel = (True, False) if gpu else (None, False)
    else:
        kernel = (True, False) if fused else (None, True)
    for group in opt.param_groups:
        group["fused"], group["foreach"] = kernel
        group["capturable"] = captured and gpu
        lr = float(group["lr"])
        group["lr"] = torch.tensor(lr, dtype=torch.float32 if gpu else torch.float64, device=device) if captured else lr
    on_device = kernel[0] or (captured and gpu)
    for p, state in opt.state.items():
        for k, v in state.items():
            if k == "step":  # the fused and capturable kernels want it beside the parameters, the others on the host
                state[k] = v.to(p.device if on_device else "cpu", torch.float32)
            elif torch.is_tensor(v) and v.shape == p.shape:
                state[k] = torch.empty_like(p).copy_(v)  # the parameter's strides


def has_batchnorm(net):
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def _to_float(out):
    if torch.is_tensor(out):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, (tuple, list)):
        return type(out)(_to_float(o) for o in out)
    return out


def _set_forward(module, forward, *, fp32_in=False, fp32_out=False, device_type="cpu"):
    """module.forward = `forward` (its own, or a compiled one), optionally run with autocast off
    on fp32 inputs and/or with fp32 outputs; marked so that `release` can take it off again.
    The casts live in this eager wrapper rather than in hooks: a hook is a code object of its
    own that every network shares, and dynamo would compile it once per network and grad mode."""

    def run(*args, **kwargs):
        if fp32_in:
            with torch.autocast(device_type, enabled=False):
                out = forward(*_to_float(args), **kwargs)
        else:
            out = forward(*args, **kwargs)
        return _to_float(out) if fp32_out else out

    run._runtime_wrapper = True
    module.forward = run


def wrap_networks(model, device_type, *, fast, compile_fn=None, skip_compile=lambda net: False):
    """Networks compiled (each forward on its own) and/or put under the fast path's precision
    rules: bf16 autocast reaches the networks, but network outputs (so every loss is computed in
    fp32), the networks a model declares in `fp32_networks`, batch norm (its statistics and
    running averages) and weight parametrisations (the spectral-norm power iteration) stay fp32.
    Returns the names of the compiled networks."""
    if fast:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                _set_forward(m, m.forward, fp32_in=True, device_type=device_type)
            for plist in getattr(m, "parametrizations", {}).values():
                for p in plist:
                    _set_forward(p, p.forward, fp32_in=True, device_type=device_type)
    compiled = []
    for name, net in parallel.networks(model, ema=True):
        if not any(True for _ in net.parameters()):
            continue  # a placeholder (the autoencoder's absent D): nothing runs
        forward = net.forward
        if compile_fn is not None and not skip_compile(net):
            forward = compile_fn(forward)
            compiled.append(name)
        elif not fast:
            continue  # plain and eager: nothing to wrap
        _set_forward(net, forward, fp32_in=fast and name in model.fp32_networks, fp32_out=fast, device_type=device_type)
    return compiled


def unwrap_networks(model):
    """Every forward wrap_networks set taken off: the classes' own forwards again."""
    for m in model.modules():
        if getattr(vars(m).get("forward"), "_runtime_wrapper", False):
            del m.forward
