"""SCConv's fast kernels behind the registered ops (torch ops, so any device).

SRU + squeeze (``sru_squeeze_*``): X → S, backward from X alone (the gate is recomputed). CRU
(``cru_*``): S → Z, backward from S and D = Y1 − Y2 (``'joint'``: also Y2). Both walk the batch in
image chunks (:func:`~mmconv.ops.cpu_chunks.chunks_of`): every step is per image (GroupNorm and the
fuse weights included), and a dozen elementwise passes over a chunk that stays in the CPU caches
cost a fraction of passes over the whole batch. Results do not depend on the chunking. The gate
math runs in fp32 (fp64 for fp64 inputs), the convs in the weights' dtype. On CUDA with Triton, the
SRU forward forms Y in one pass and the CRU fuse takes two (:mod:`.triton_kernels`) instead of the
elementwise passes.
"""
import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from ..cpu_chunks import chunks_of
from ..pointwise import add_pointwise_input_grad, batched_pointwise, pointwise_weight_grad, strided_pixels
from ..precision import accumulation_dtype
from ..triton_support import TRITON_DTYPES, use_triton

__all__ = ['cru_backward', 'cru_forward', 'fuse_weights', 'sru_squeeze_backward', 'sru_squeeze_forward']


def _split_matmul(weights: List[torch.Tensor], pixels: torch.Tensor,
                  out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Block-diagonal 1×1 conv: weight k maps the k-th channel block of ``pixels`` (B×ΣI×P).

    The result goes to a fresh tensor, or to ``out`` (contiguous, B×ΣO×P).
    """
    batch = pixels.shape[0]
    shapes = {tuple(weight.shape) for weight in weights}
    if len(shapes) == 1:  # equal blocks (α = 1/2): one matmul over B·blocks
        blocks = len(weights)
        out_block, in_block = weights[0].shape[:2]
        stacked = torch.stack([weight.reshape(out_block, in_block) for weight in weights])
        stacked = stacked.expand(batch, -1, -1, -1).reshape(batch * blocks, out_block, in_block)
        product = torch.bmm(stacked, pixels.reshape(batch * blocks, in_block, -1),
                            out=None if out is None else out.view(batch * blocks, out_block, -1))
        return product.view(batch, blocks * out_block, -1)
    blocks = torch.split(pixels, [weight.shape[1] for weight in weights], dim=1)
    return torch.cat([batched_pointwise(weight, block) for weight, block in zip(weights, blocks)], dim=1, out=out)


def _split_weight_grads(grad_pixels: torch.Tensor, pixels: torch.Tensor,
                        weights: List[torch.Tensor]) -> List[torch.Tensor]:
    """Weight gradients of :func:`_split_matmul`, each shaped like its weight."""
    grad_blocks = torch.split(grad_pixels, [weight.shape[0] for weight in weights], dim=1)
    blocks = torch.split(pixels, [weight.shape[1] for weight in weights], dim=1)
    return [
        pointwise_weight_grad(grad, block).view_as(weight) for weight, grad, block in zip(weights, grad_blocks, blocks)
    ]


def _gate_affine(gn_weight: torch.Tensor, gn_bias: torch.Tensor,
                 dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
    """(W_γ·γ, W_γ·β): sigmoid(W_γ ⊙ GN(x)) is a GroupNorm with this affine followed by a sigmoid."""
    gamma, beta = gn_weight.to(dtype), gn_bias.to(dtype)
    gamma_weights = gamma / gamma.sum()
    return gamma * gamma_weights, beta * gamma_weights


def _sru_gate(x: torch.Tensor, affine: Tuple[torch.Tensor, torch.Tensor], groups: int, eps: float, threshold: float,
              gate: str):
    """X, reweights R, the informative mask (0/1 float) and the GN statistics, in fp32 or wider.

    ``affine`` is :func:`_gate_affine` in the accumulation dtype.
    """
    batch, channels = x.shape[:2]
    x = x.to(accumulation_dtype(x.dtype)).contiguous()
    reweights, mean, rstd = torch.native_group_norm(x, *affine, batch, channels, x[0, 0].numel(), groups, eps)
    reweights.sigmoid_()
    # Float 0/1 masks and arithmetic instead of torch.where, whose CPU kernel is ~10× slower.
    compare = torch.gt if gate == 'soft' else torch.ge
    informative = compare(reweights, threshold, out=torch.empty_like(reweights))
    return x, reweights, informative, mean, rstd


def _halves(x: torch.Tensor) -> torch.Tensor:
    """B×C×H×W as B×2×(C/2)×(H·W), so both channel halves broadcast against one half."""
    return x.view(x.shape[0], 2, x.shape[1] // 2, x[0, 0].numel())


def _sru_output(x: torch.Tensor, reweights: torch.Tensor, informative: torch.Tensor, gate: str,
                consume: bool) -> torch.Tensor:
    """Y = cross-reconstructed W1·X and W2·X; ``consume`` lets it overwrite R and the mask.

    Every product is by an exact 0 or 1 or by R, so given the same R, Y equals the reference's.
    """
    half = x.shape[1] // 2
    out = torch.mul(informative, x)
    # (1 − M)·X, the part of X below the threshold.
    rest = torch.sub(x, out, out=informative if consume else None)
    if gate == 'soft':
        # W2·X = R·(1 − M)·X and W1·X = M·X + W2·X, so Y = M·X + (both halves of W2·X).
        rest.mul_(reweights)
        shared = torch.add(rest[:, :half], rest[:, half:], out=reweights[:, :half] if consume else None)
        _halves(out).add_(shared.reshape(x.shape[0], 1, half, -1))
    else:
        out[:, :half] += rest[:, half:]
        out[:, half:] += rest[:, :half]
    return out


def _squeeze(y: torch.Tensor, squeeze1: torch.Tensor, squeeze2: torch.Tensor, out: torch.Tensor) -> None:
    """The two 1×1 squeeze convs on the up/low channel split of Y, written to ``out`` (B×(us+ls)×H×W)."""
    _split_matmul([squeeze1, squeeze2], strided_pixels(y.to(squeeze1.dtype)), out=out.flatten(2))


def _image_chunks(x: torch.Tensor) -> List[slice]:
    """Image chunks of a B×C×H×W map for the SRU and CRU passes, sized by x in the accumulation dtype.

    Measured on a 2-core EPYC (B=8, C=64, 56², fp32): two images per chunk did best; one image per
    chunk spends what it saves on per-op overhead.
    """
    image_bytes = math.prod(x.shape[1:]) * accumulation_dtype(x.dtype).itemsize
    return chunks_of(x.shape[0], image_bytes, x.device)


def _accumulate(total: Optional[List[Optional[torch.Tensor]]],
                part: Optional[List[Optional[torch.Tensor]]]) -> Optional[List[Optional[torch.Tensor]]]:
    """Sum, entry by entry and in place in ``total``, two lists of chunk gradients (None: not needed)."""
    if total is None or part is None:
        return part if total is None else total
    return [None if a is None else a.add_(b) for a, b in zip(total, part)]


def sru_squeeze_forward(x: torch.Tensor, gn_weight: torch.Tensor, gn_bias: torch.Tensor, squeeze1: torch.Tensor,
                        squeeze2: torch.Tensor, groups: int, eps: float, threshold: float, gate: str) -> torch.Tensor:
    """SRU followed by the CRU squeeze convs: X → S (B×(us+ls)×H×W, the squeeze weights' dtype)."""
    batch, _, height, width = x.shape
    squeezed = x.new_empty((batch, squeeze1.shape[0] + squeeze2.shape[0], height, width), dtype=squeeze1.dtype)
    affine = _gate_affine(gn_weight, gn_bias, accumulation_dtype(x.dtype))
    if use_triton(x, dtypes=TRITON_DTYPES):
        from .triton_kernels import triton_sru_output
        _squeeze(
            triton_sru_output(x, *affine, groups, eps, threshold, gate, squeeze1.dtype), squeeze1, squeeze2,
            out=squeezed)
        return squeezed
    for part in _image_chunks(x):
        x_acc, reweights, informative, _, _ = _sru_gate(x[part], affine, groups, eps, threshold, gate)
        _squeeze(_sru_output(x_acc, reweights, informative, gate, consume=True), squeeze1, squeeze2, out=squeezed[part])
    return squeezed


def sru_squeeze_backward(grad_squeezed: torch.Tensor, x: torch.Tensor, gn_weight: torch.Tensor, gn_bias: torch.Tensor,
                         squeeze1: torch.Tensor, squeeze2: torch.Tensor, groups: int, eps: float, threshold: float,
                         gate: str) -> List[torch.Tensor]:
    """Gradients of X, GroupNorm's γ and β (zero for the hard gate) and the two squeeze weights."""
    config = (groups, eps, threshold, gate)
    grad_squeezed = grad_squeezed.to(squeeze1.dtype).contiguous()
    grad_x = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    acc_dtype = accumulation_dtype(x.dtype)
    grad_squeezes = [torch.zeros(w.shape, dtype=acc_dtype, device=w.device) for w in (squeeze1, squeeze2)]
    grad_scaled_affine = None  # ∂ of GroupNorm's scaled γ and β, summed over the chunks
    affine = _gate_affine(gn_weight, gn_bias, acc_dtype)
    for part in _image_chunks(x):
        chunk_squeezes, chunk_affine = _sru_chunk_backward(x[part], grad_squeezed[part], affine, squeeze1, squeeze2,
                                                           config, grad_x[part])
        grad_squeezes = _accumulate(grad_squeezes, chunk_squeezes)
        grad_scaled_affine = _accumulate(grad_scaled_affine, chunk_affine)

    grad_gn_weight, grad_gn_bias = torch.zeros_like(gn_weight), torch.zeros_like(gn_bias)
    if gate == 'soft' and grad_scaled_affine is not None:
        grad_scaled_gamma, grad_scaled_beta = grad_scaled_affine
        gamma = gn_weight.to(grad_scaled_gamma.dtype)
        gamma_sum = gamma.sum()
        gamma_weights = gamma / gamma_sum
        # z = W_γ·(γ·n + β) with W_γ = γ/Σγ: chain the scaled-affine gradients back to γ and β.
        grad_gamma_weights = gamma * grad_scaled_gamma + gn_bias.to(gamma.dtype) * grad_scaled_beta
        grad_gn_weight = (gamma_weights * grad_scaled_gamma + grad_gamma_weights / gamma_sum -
                          (grad_gamma_weights * gamma).sum() / gamma_sum**2).to(gn_weight.dtype)
        grad_gn_bias = (gamma_weights * grad_scaled_beta).to(gn_bias.dtype)
    return [
        grad_x, grad_gn_weight, grad_gn_bias, grad_squeezes[0].to(squeeze1.dtype), grad_squeezes[1].to(squeeze2.dtype)
    ]


def _sru_chunk_backward(x: torch.Tensor, grad_squeezed: torch.Tensor, affine: Tuple[torch.Tensor, torch.Tensor],
                        squeeze1: torch.Tensor, squeeze2: torch.Tensor, config: Tuple[int, float, float,
                                                                                      str], grad_x: torch.Tensor):
    """Backward of :func:`sru_squeeze_forward` over a chunk of images; writes ∂X into ``grad_x``.

    ``affine`` is :func:`_gate_affine` in the accumulation dtype.

    Returns:
        The squeeze weight gradients and, for the soft gate, the gradients of GroupNorm's
        scaled affine (W_γ·γ, W_γ·β) (else None), both summed over the chunk in the accumulation
        dtype, so that the sum over chunks does not round in bf16.
    """
    groups, eps, threshold, gate = config
    batch, channels = x.shape[:2]
    half = channels // 2
    x_acc, reweights, informative, mean, rstd = _sru_gate(x, affine, groups, eps, threshold, gate)
    # ∂X is formed in place in ``grad_x`` when that has the accumulation dtype.
    grad_acc = grad_x if grad_x.dtype == x_acc.dtype else None
    if gate == 'soft':
        # Y = M·X + shared, shared = both halves of U = W2·X with W2 = (1 − M)·R = R − R·M (exact
        # for a 0/1 M); U also serves ∂R.
        rest_weights = torch.addcmul(reweights, reweights, informative, value=-1)
        rest = torch.mul(rest_weights, x_acc)
        shared = torch.add(rest[:, :half], rest[:, half:]).reshape(batch, 1, half, -1)
        y = torch.addcmul(shared, _halves(informative), _halves(x_acc)).view_as(x_acc)
    else:
        y = _sru_output(x_acc, reweights, informative, gate, consume=False)

    grad_pixels = strided_pixels(grad_squeezed)
    grad_squeezes = [
        grad.to(x_acc.dtype)
        for grad in _split_weight_grads(grad_pixels, strided_pixels(y.to(squeeze1.dtype)), [squeeze1, squeeze2])
    ]
    del y
    transposed = [weight.flatten(1).t() for weight in (squeeze1, squeeze2)]
    grad_y = _split_matmul(transposed, grad_pixels).view_as(x).to(x_acc.dtype)

    if gate == 'hard':
        # The hard masks are constants: X reaches Y through its own half or the other one only.
        grad_x_acc = torch.cat([grad_y[:, half:], grad_y[:, :half]], 1, out=grad_acc)
        grad_x_acc.mul_(torch.rsub(informative, 1)).addcmul_(grad_y, informative)
        if grad_acc is None:
            grad_x.copy_(grad_x_acc)
        return grad_squeezes, None
    # Each half of Y holds U of the other half, so off the mask R sees dY + dY_swapped:
    # ∂X = M·dY + W2·shared_grad and ∂R = (1 − M)·X·shared_grad, with shared_grad = dY_top +
    # dY_bot; through the sigmoid, ∂z = ∂R·R·(1 − R) = U·(1 − R)·shared_grad.
    shared_grad = (grad_y[:, :half] + grad_y[:, half:]).reshape(batch, 1, half, -1)
    grad_x_acc = torch.mul(_halves(rest_weights), shared_grad,
                           out=None if grad_acc is None else _halves(grad_acc)).view_as(x_acc)
    grad_x_acc.addcmul_(grad_y, informative)
    grad_z = rest.addcmul_(rest, reweights, value=-1)  # U·(1 − R) in one pass
    _halves(grad_z).mul_(shared_grad)
    grad_x_gn, grad_scaled_gamma, grad_scaled_beta = torch.ops.aten.native_group_norm_backward(
        grad_z, x_acc, mean, rstd, affine[0], batch, channels, x[0, 0].numel(), groups, [True, True, True])
    grad_x_acc.add_(grad_x_gn)
    if grad_acc is None:
        grad_x.copy_(grad_x_acc)
    return grad_squeezes, [grad_scaled_gamma, grad_scaled_beta]


def cru_forward(squeezed: torch.Tensor, gwc_weight: torch.Tensor, gwc_bias: Optional[torch.Tensor],
                pwc1_weight: torch.Tensor, pwc2_weight: Optional[torch.Tensor], stride: int, dilation: int,
                gwc_groups: int, fuse: str) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """CRU transform and fuse: S → Z, with what backward needs: the fuse weights, D = Y1 − Y2 and
    (``'joint'``; else an empty tensor) Y2."""
    batch, _, height, width = squeezed.shape
    # Every branch gives ⌈H/s⌉×⌈W/s⌉ outputs; each chunk writes its slice of the whole output.
    shape = (batch, gwc_weight.shape[0], -(-height // stride), -(-width // stride))
    out, diff = squeezed.new_empty(shape), squeezed.new_empty(shape)
    lower_output = squeezed.new_empty(shape if fuse == 'joint' else (0, ))
    fuse_weights = squeezed.new_empty((batch, shape[1] * (1 if fuse == 'paper' else 2)),
                                      dtype=accumulation_dtype(squeezed.dtype))
    for part in _image_chunks(out):
        _cru_chunk_forward(squeezed[part], gwc_weight, gwc_bias, pwc1_weight, pwc2_weight, stride, dilation, gwc_groups,
                           fuse, out=out[part], diff=diff[part], weights=fuse_weights[part],
                           y2=lower_output[part] if fuse == 'joint' else None)
    return out, fuse_weights, diff, lower_output


def cru_backward(grad_out: torch.Tensor, squeezed: torch.Tensor, gwc_weight: torch.Tensor, has_bias: bool,
                 pwc1_weight: torch.Tensor, pwc2_weight: Optional[torch.Tensor], fuse_weights: torch.Tensor,
                 diff: torch.Tensor, lower_output: torch.Tensor, stride: int, dilation: int, gwc_groups: int,
                 fuse: str) -> List[torch.Tensor]:
    """Gradients of S, the GWC weight and bias (empty without one), PWC1 and PWC2 (empty without)."""
    grad_out = grad_out.to(squeezed.dtype).contiguous()
    grad_squeezed = torch.empty_like(squeezed)
    acc_dtype = accumulation_dtype(squeezed.dtype)
    # (shape, dtype) of the GWC weight and bias, PWC1 and PWC2; the bias has the weight's dtype.
    params = [(gwc_weight.shape, gwc_weight.dtype), (gwc_weight.shape[:1], gwc_weight.dtype) if has_bias else None,
              (pwc1_weight.shape, pwc1_weight.dtype), None if pwc2_weight is None else
              (pwc2_weight.shape, pwc2_weight.dtype)]
    grad_params = [None if p is None else squeezed.new_zeros(p[0], dtype=acc_dtype) for p in params]
    config = (stride, dilation, gwc_groups, fuse, has_bias)
    for part in _image_chunks(grad_out):
        grad_params = _accumulate(
            grad_params,
            _cru_chunk_backward(grad_out[part], squeezed[part], diff[part], fuse_weights[part],
                                lower_output[part] if fuse == 'joint' else None, gwc_weight, pwc1_weight, pwc2_weight,
                                config, grad_squeezed[part]))
    return [grad_squeezed] + [
        squeezed.new_empty(0) if grad is None else grad.to(param[1]) for grad, param in zip(grad_params, params)
    ]


def _cru_chunk_forward(squeezed: torch.Tensor, gwc_weight: torch.Tensor, gwc_bias: Optional[torch.Tensor],
                       pwc1_weight: torch.Tensor, pwc2_weight: Optional[torch.Tensor], stride: int, dilation: int,
                       gwc_groups: int, fuse: str, out: torch.Tensor, diff: torch.Tensor, weights: torch.Tensor,
                       y2: Optional[torch.Tensor]) -> None:
    """CRU forward over a chunk of images, written to ``out``, with D = Y1 − Y2 to ``diff``, the fuse
    weights to ``weights`` and (``'joint'`` only) Y2 to ``y2``, for backward."""
    up_squeezed = pwc1_weight.shape[1]
    upper, lower = squeezed[:, :up_squeezed], squeezed[:, up_squeezed:]
    kernel_size = gwc_weight.shape[-1]
    # Y1 = GWC(S_up) + PWC1(S_up): the 1×1 accumulates into the grouped conv's output.
    # The op returns D, so it is built in the op's own buffer (one copy of the grouped conv's output).
    diff.copy_(F.conv2d(upper, gwc_weight, gwc_bias, stride, dilation * (kernel_size // 2), dilation, gwc_groups))
    batch, out_channels, out_h, out_w = diff.shape
    diff.flatten(2).baddbmm_(pwc1_weight.flatten(1).expand(batch, -1, -1), strided_pixels(upper, stride))
    # Y2 = [PWC2(S_low), S_low subsampled], built in the output.
    lower_map = lower[:, :, ::stride, ::stride]
    if pwc2_weight is None:
        out.copy_(lower_map)
    else:
        generated = batched_pointwise(pwc2_weight, strided_pixels(lower, stride))
        torch.cat([generated.view(batch, -1, out_h, out_w), lower_map], dim=1, out=out)
    if use_triton(diff, dtypes=TRITON_DTYPES):
        from .triton_kernels import triton_cru_fuse
        triton_cru_fuse(diff, out, weights, y2, fuse)
        return
    diff.sub_(out)
    acc_dtype = accumulation_dtype(diff.dtype)
    pooled_diff = diff.mean(dim=(2, 3), dtype=acc_dtype)
    pooled_y2 = None
    if fuse == 'joint':
        y2.copy_(out)
        pooled_y2 = y2.mean(dim=(2, 3), dtype=acc_dtype)
    first, y2_scale = fuse_weights(pooled_diff, pooled_y2, fuse, weights)
    if y2_scale is not None:
        out.mul_(y2_scale[..., None, None].to(out.dtype))
    out.addcmul_(diff, first[..., None, None].to(out.dtype))


def fuse_weights(pooled_diff: torch.Tensor, pooled_y2: Optional[torch.Tensor], fuse: str,
                 weights: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The CRU fuse Z = s·Y2 + β1·D from the pooled D = Y1 − Y2 and (``'joint'``) pooled Y2, B×C each.

    ``'paper'``: a per-channel two-way softmax, β1 = sigmoid(S1 − S2), s = 1; ``'joint'``: one softmax
    over the 2C logits (S_D + S_Y2, S_Y2), s = β1 + β2. The weights backward needs are written to
    ``weights`` (B×C or B×2C).

    Returns:
        β1 (B×C) and s (B×C, or None for 1).
    """
    if fuse == 'paper':
        return torch.sigmoid(pooled_diff, out=weights), None
    weights.copy_(torch.softmax(torch.cat([pooled_diff + pooled_y2, pooled_y2], 1), dim=1))
    first, second = weights.chunk(2, dim=1)
    return first, first + second


def _cru_chunk_backward(grad_out: torch.Tensor, squeezed: torch.Tensor, diff: torch.Tensor, weights: torch.Tensor,
                        y2: Optional[torch.Tensor], gwc_weight: torch.Tensor, pwc1_weight: torch.Tensor,
                        pwc2_weight: Optional[torch.Tensor], config,
                        grad_squeezed: torch.Tensor) -> List[Optional[torch.Tensor]]:
    """CRU backward over a chunk of images; writes ∂S into ``grad_squeezed``.

    Returns:
        The gradients of the GWC weight and bias, PWC1 and PWC2 (None for an absent bias or PWC2),
        summed over the chunk, in the accumulation dtype.
    """
    stride, dilation, gwc_groups, fuse, has_bias = config
    batch, out_channels, out_h, out_w = grad_out.shape
    pixels = out_h * out_w
    acc_dtype = accumulation_dtype(diff.dtype)
    up_squeezed = pwc1_weight.shape[1]
    upper, lower = squeezed[:, :up_squeezed], squeezed[:, up_squeezed:]

    # Fuse backward: Z = Y2 + β1·D ('paper') or Z = (β1 + β2)·Y2 + β1·D ('joint'), D = Y1 − Y2.
    grad_first = torch.einsum('bcp,bcp->bc', grad_out.flatten(2).to(acc_dtype), diff.flatten(2).to(acc_dtype))
    if fuse == 'paper':
        first = weights
        grad_pooled_diff = grad_first * first * (1 - first)
        grad_y2_scale = None
    else:
        first, second = weights.chunk(2, dim=1)
        grad_second = torch.einsum('bcp,bcp->bc', grad_out.flatten(2).to(acc_dtype), y2.flatten(2).to(acc_dtype))
        grad_logits = torch.cat([grad_first + grad_second, grad_second], 1)
        grad_logits = weights * (grad_logits - (weights * grad_logits).sum(1, keepdim=True))
        # The logits are (S_D + S_Y2, S_Y2): route them to the pooled D and pooled Y2.
        grad_pooled_diff = grad_logits[:, :out_channels]
        grad_y2_scale = grad_logits.view(batch, 2, out_channels).sum(1)
    # ∂D = g·β1 + ∂S_D/P and ∂Y1 = ∂D; ∂Y2 = g − ∂D ('paper') or g·(β1 + β2) + ∂S_Y2/P − ∂D
    # ('joint'), P = H'·W' (the pools are means).
    grad_diff = torch.addcmul((grad_pooled_diff / pixels)[..., None, None].to(grad_out.dtype), grad_out,
                              first[..., None, None].to(grad_out.dtype))
    if fuse == 'paper':
        grad_y2 = torch.sub(grad_out, grad_diff)
    else:
        grad_y2 = torch.addcmul((grad_y2_scale / pixels)[..., None, None].to(grad_out.dtype), grad_out,
                                (first + second)[..., None, None].to(grad_out.dtype))
        grad_y2.sub_(grad_diff)

    # Y1 = GWC(S_up) + PWC1(S_up).
    grad_upper, grad_gwc_weight, grad_gwc_bias = torch.ops.aten.convolution_backward(
        grad_diff, upper, gwc_weight, [out_channels] if has_bias else None, [stride, stride],
        [dilation * (gwc_weight.shape[-1] // 2)] * 2, [dilation, dilation], False, [0, 0], gwc_groups,
        [True, True, has_bias])
    grad_diff_pixels = grad_diff.flatten(2)
    grad_pwc1 = pointwise_weight_grad(grad_diff_pixels, strided_pixels(upper, stride))
    add_pointwise_input_grad(grad_upper, pwc1_weight, grad_diff_pixels, stride)
    del grad_diff, grad_diff_pixels
    # Y2 = [PWC2(S_low), S_low[::s, ::s]].
    generated = pwc2_weight.shape[0] if pwc2_weight is not None else 0
    grad_y2_pixels = grad_y2.flatten(2)
    grad_pwc2 = None
    if generated:
        grad_pwc2 = pointwise_weight_grad(grad_y2_pixels[:, :generated], strided_pixels(lower, stride))
    # The reused part's gradient first, then PWC2's input gradient accumulates onto it.
    if stride == 1:
        grad_lower = grad_y2[:, generated:].contiguous()
    else:
        grad_lower = torch.zeros_like(lower)
        grad_lower[:, :, ::stride, ::stride] = grad_y2[:, generated:]
    if generated:
        add_pointwise_input_grad(grad_lower, pwc2_weight, grad_y2_pixels[:, :generated], stride)
    torch.cat([grad_upper, grad_lower], dim=1, out=grad_squeezed)
    return [
        None if grad is None else grad.to(acc_dtype) for grad in (grad_gwc_weight, grad_gwc_bias, grad_pwc1, grad_pwc2)
    ]
