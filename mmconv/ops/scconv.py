"""SCConv: Spatial and Channel reconstruction Convolution (SRU followed by CRU).

Li, Wen, He, "SCConv: Spatial and Channel Reconstruction Convolution for Feature Redundancy",
CVPR 2023, pp. 6153-6162. https://openaccess.thecvf.com/content/CVPR2023/html/Li_SCConv_Spatial_and_Channel_Reconstruction_Convolution_for_Feature_Redundancy_CVPR_2023_paper.html
(the authors' repository https://github.com/JavonLi/SCConv holds no code).

SRU (spatial reconstruction unit), on X (B×C1×H×W, C1 even):

    W_γ = γ / Σγ (γ, β: the GroupNorm affine),  R = sigmoid(W_γ ⊙ GN(X)),
    gate ``'soft'`` (paper default here): W1 = 1 where R > t else R,  W2 = 0 where R > t else R,
    gate ``'hard'``: W1 = [R ≥ t],  W2 = [R < t]                                 (t = 0.5),
    X1 = W1 ⊙ X,  X2 = W2 ⊙ X  (the gates multiply X, not GN(X)),
    Y = concat(X1[:C1/2] + X2[C1/2:],  X1[C1/2:] + X2[:C1/2]).

CRU (channel reconstruction unit), Y → Z (B×C2×H'×W'), split α, squeeze ratio r, GWC groups g:

    up = ⌊α·C1⌋ and low = C1 − up channels of Y, each squeezed by a 1×1 conv to us = up//r and
    ls = low//r channels;
    Y1 = GWC(S_up) + PWC1(S_up)   (k×k conv with g groups, and a 1×1 conv, both us → C2, stride s),
    Y2 = concat(PWC2(S_low), S_low[::s, ::s])   (PWC2: 1×1, ls → C2 − ls; omitted when that is 0),
    fuse ``'paper'`` (Eq. 7-9): β1 = e^{S1}/(e^{S1} + e^{S2}) per channel with S = GAP(Y),
        i.e. β1 = sigmoid(GAP(Y1 − Y2)), Z = β1·Y1 + (1 − β1)·Y2;
    fuse ``'joint'``: one softmax over all 2·C2 pooled channels, Z = β[:C2]·Y1 + β[C2:]·Y2.

Choices where the references disagree (research notes scconv_sccnet.md §1.2-§1.6, §6):

* Defaults follow the paper: α = 1/2, r = 2, g = 2, k = 3, t = 0.5, the per-channel two-way softmax
  (``fuse='paper'``) and the soft gate, which is the literal reading of "set the weights above the
  threshold to 1 ... to 0"; the hard gate also stops every gradient to GroupNorm.
  ``gate='hard'`` and ``fuse='joint'`` reproduce the popular unofficial code (cheng-haha/ScConv
  July-October 2023, also XxxxYi and the mmengine variant), which many published results used.
* GroupNorm is ``nn.GroupNorm`` (γ = 1, β = 0 at init, so Σγ stays away from 0) with 4 groups, the
  cheng-haha wrapper's default; the count is reduced to gcd(C1, gn_groups) so every even width works.
  Σγ is a tensor sum (upstream's Python ``sum`` launches C adds) and the gate is computed in fp32.
* The paper gives no bias to GWC (Eq. 11); ``gwc_bias=True`` adds cheng-haha's bias.
* C1 ≠ C2 uses the paper's general form (Eq. 11); cheng-haha's code has one width only. For a
  DenseNet layer (128 → 32) PWC2 has 0 outputs and the lower branch is pure reuse.
* Stride (the paper is silent): on GWC, PWC1 and PWC2, with the reused S_low subsampled
  ``[::s, ::s]``; the squeeze and the SRU run at the input resolution. Odd sizes with stride 2
  give ⌈H/2⌉ rows on every branch.

Parameters per layer (α = 1/2, r = 2, g = 2, k = 3, no GWC bias): 2·C1 (GN) + C1²/4 (squeezes) +
9·(C1/4)·C2/2 (GWC) + (C1/4)·C2 (PWC1) + (C1/4)·(C2 − C1/4) (PWC2); 29·C²/16 + 2C for C1 = C2 = C,
against 9·C² for a 3×3 conv.

Implementations (``impl``):

* ``'reference'``: the :class:`SRU` and :class:`CRU` modules, written plainly. Autograd keeps about
  ten activation-sized tensors (GN output, reweights, masks, both gated copies, squeezed maps,
  branch outputs, concatenations, the weighted product).
* ``'fast'`` (``'auto'``): two autograd Functions with the same results. :class:`SRUSqueezeFunction`
  maps X to the squeezed S (B×(us+ls)×H×W) and saves only X (backward recomputes the gate);
  :class:`CRUFunction` maps S to Z and saves only S and Y1 − Y2 (the paper fuse needs nothing else;
  ``'joint'`` also keeps Y2). The 1×1 convs are batched matmuls (no oneDNN layout reorders), the
  gates use 0/1 float masks instead of ``torch.where``, and the fuse is one in-place
  Z = Y2 + β1·(Y1 − Y2). Every step is per image (GroupNorm and the fuse pools included), so on CPU
  both Functions walk the batch in chunks of about 2 MiB per map (:mod:`mmconv.ops.cpu_chunks`):
  the dozen elementwise passes of the gate and the fuse then run in the caches instead of streaming
  the whole batch from memory each time (measured on a 2-core EPYC, B=8, C=64, 56², against the
  whole-batch passes in interleaved runs: 6-15 % less time for the layer). Results agree with the reference to rounding (fp64: ~1e-15), whatever the
  chunking.

FLOPs (mmengine counter with mmconv's handles): the convs' MACs, GroupNorm at 5 per element and the
pooling of Y1 and Y2 at 1 per element, as mmengine counts the reference modules, whichever path runs.
"""
import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .cpu_chunks import chunks_of
from .flop_handles import register_flop_handle, value_shape
from .pointwise import (add_pointwise_input_grad, batched_pointwise, pointwise_weight_grad,
                        strided_pixels)

__all__ = ['SCConv', 'SRU', 'CRU', 'SRUSqueezeFunction', 'CRUFunction']

IMPLS = ('auto', 'fast', 'reference')
GATES = ('soft', 'hard')
FUSES = ('paper', 'joint')


class SRU(nn.Module):
    """Spatial reconstruction unit (reference implementation).

    Args:
        channels: C1, even.
        gn_groups: GroupNorm groups, reduced to gcd(C1, gn_groups).
        gate_threshold: t in (0, 1).
        gate: ``'soft'`` or ``'hard'`` (see the module docstring).

    Shapes:
        x: B×C1×H×W → B×C1×H×W.
    """

    def __init__(self, channels: int, gn_groups: int = 4, gate_threshold: float = 0.5,
                 gate: str = 'soft') -> None:
        super().__init__()
        self.gn = nn.GroupNorm(math.gcd(channels, gn_groups), channels)
        self.gate_threshold = gate_threshold
        self.gate = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acc_dtype = _accumulation_dtype(x.dtype)
        gamma = self.gn.weight.to(acc_dtype)
        gamma_weights = (gamma / gamma.sum()).view(-1, 1, 1)
        reweights = torch.sigmoid(self.gn(x).to(acc_dtype) * gamma_weights)
        informative = reweights > self.gate_threshold
        if self.gate == 'soft':
            w1 = torch.where(informative, torch.ones_like(reweights), reweights)
            w2 = torch.where(informative, torch.zeros_like(reweights), reweights)
        else:
            w1 = (reweights >= self.gate_threshold).to(acc_dtype)
            w2 = (reweights < self.gate_threshold).to(acc_dtype)
        x1, x2 = (w1 * x).to(x.dtype), (w2 * x).to(x.dtype)
        x11, x12 = x1.chunk(2, dim=1)
        x21, x22 = x2.chunk(2, dim=1)
        return torch.cat([x11 + x22, x12 + x21], dim=1)


class CRU(nn.Module):
    """Channel reconstruction unit (reference implementation), general C1 → C2 with stride.

    Args:
        in_channels: C1.
        out_channels: C2.
        kernel_size: k of the group-wise conv (odd).
        stride: stride of GWC, PWC1, PWC2 and of the reused lower part.
        dilation: dilation of GWC.
        alpha: split ratio α; the upper part has ⌊α·C1⌋ channels.
        squeeze_ratio: r.
        gwc_groups: g.
        gwc_bias: give GWC a bias.
        fuse: ``'paper'`` or ``'joint'``.

    Shapes:
        x: B×C1×H×W → B×C2×⌈H/s⌉×⌈W/s⌉.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, alpha: float = 0.5, squeeze_ratio: int = 2, gwc_groups: int = 2,
                 gwc_bias: bool = False, fuse: str = 'paper') -> None:
        super().__init__()
        up, low, up_squeezed, low_squeezed = cru_widths(in_channels, alpha, squeeze_ratio)
        self.up_channels, self.low_channels = up, low
        self.stride = stride
        self.fuse = fuse
        self.squeeze1 = nn.Conv2d(up, up_squeezed, 1, bias=False)
        self.squeeze2 = nn.Conv2d(low, low_squeezed, 1, bias=False)
        self.gwc = nn.Conv2d(up_squeezed, out_channels, kernel_size, stride,
                             dilation * (kernel_size // 2), dilation, gwc_groups, bias=gwc_bias)
        self.pwc1 = nn.Conv2d(up_squeezed, out_channels, 1, stride, bias=False)
        pwc2_width = out_channels - low_squeezed
        self.pwc2 = nn.Conv2d(low_squeezed, pwc2_width, 1, stride, bias=False) if pwc2_width else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up, low = torch.split(x, [self.up_channels, self.low_channels], dim=1)
        up, low = self.squeeze1(up), self.squeeze2(low)
        y1 = self.gwc(up) + self.pwc1(up)
        reused = low[:, :, ::self.stride, ::self.stride]
        y2 = torch.cat([self.pwc2(low), reused], dim=1) if self.pwc2 is not None else reused
        pooled = F.adaptive_avg_pool2d(torch.cat([y1, y2], dim=1), 1)
        if self.fuse == 'paper':
            weights = torch.softmax(torch.stack(pooled.chunk(2, dim=1)), dim=0)
        else:
            weights = torch.softmax(pooled, dim=1).chunk(2, dim=1)
        return weights[0] * y1 + weights[1] * y2


def cru_widths(in_channels: int, alpha: float, squeeze_ratio: int) -> Tuple[int, int, int, int]:
    """(up, low, up squeezed, low squeezed) channel counts of the CRU split."""
    up = int(alpha * in_channels)
    low = in_channels - up
    return up, low, up // squeeze_ratio, low // squeeze_ratio


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
    return torch.cat([batched_pointwise(weight, block) for weight, block in zip(weights, blocks)], dim=1,
                     out=out)


def _split_weight_grads(grad_pixels: torch.Tensor, pixels: torch.Tensor,
                        weights: List[torch.Tensor]) -> List[torch.Tensor]:
    """Weight gradients of :func:`_split_matmul`, each shaped like its weight."""
    grad_blocks = torch.split(grad_pixels, [weight.shape[0] for weight in weights], dim=1)
    blocks = torch.split(pixels, [weight.shape[1] for weight in weights], dim=1)
    return [pointwise_weight_grad(grad, block).view_as(weight)
            for weight, grad, block in zip(weights, grad_blocks, blocks)]


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def _gate_affine(gn_weight: torch.Tensor, gn_bias: torch.Tensor,
                 dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
    """(W_γ·γ, W_γ·β): sigmoid(W_γ ⊙ GN(x)) is a GroupNorm with this affine followed by a sigmoid."""
    gamma, beta = gn_weight.to(dtype), gn_bias.to(dtype)
    gamma_weights = gamma / gamma.sum()
    return gamma * gamma_weights, beta * gamma_weights


def _sru_gate(x: torch.Tensor, affine: Tuple[torch.Tensor, torch.Tensor], groups: int, eps: float,
              threshold: float, gate: str):
    """X, reweights R, the informative mask (0/1 float) and the GN statistics, in fp32 or wider.

    ``affine`` is :func:`_gate_affine` in the accumulation dtype.
    """
    batch, channels = x.shape[:2]
    x = x.to(_accumulation_dtype(x.dtype)).contiguous()
    reweights, mean, rstd = torch.native_group_norm(x, *affine, batch, channels, x[0, 0].numel(),
                                                    groups, eps)
    reweights.sigmoid_()
    # Float 0/1 masks and arithmetic instead of torch.where, whose CPU kernel is ~10× slower.
    compare = torch.gt if gate == 'soft' else torch.ge
    informative = compare(reweights, threshold, out=torch.empty_like(reweights))
    return x, reweights, informative, mean, rstd


def _halves(x: torch.Tensor) -> torch.Tensor:
    """B×C×H×W as B×2×(C/2)×(H·W), so both channel halves broadcast against one half."""
    return x.view(x.shape[0], 2, x.shape[1] // 2, -1)


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


def _squeeze(y: torch.Tensor, squeeze1: torch.Tensor, squeeze2: torch.Tensor,
             out: torch.Tensor) -> None:
    """The two 1×1 squeeze convs on the up/low channel split of Y, written to ``out`` (B×(us+ls)×H×W)."""
    _split_matmul([squeeze1, squeeze2], strided_pixels(y.to(squeeze1.dtype)),
                  out=out.view(*out.shape[:2], -1))


def _image_chunks(x: torch.Tensor) -> List[slice]:
    """Image chunks of a B×C×H×W map for the SRU and CRU passes, sized by x in the accumulation dtype.

    Measured on a 2-core EPYC (B=8, C=64, 56², fp32): two images per chunk did best; one image per
    chunk spends what it saves on per-op overhead.
    """
    return chunks_of(x.shape[0], x[0].numel() * _accumulation_dtype(x.dtype).itemsize, x.device)


class SRUSqueezeFunction(torch.autograd.Function):
    """SRU followed by the CRU squeeze convs: X → S. Saves X only; backward recomputes the gate.

    The gate math runs in fp32 (fp64 for fp64 inputs); the squeeze runs in the squeeze weights' dtype.
    Both passes walk the batch in image chunks (:func:`~mmconv.ops.cpu_chunks.chunks_of`): every
    step is per image (GroupNorm included), and a dozen elementwise passes over a chunk that stays
    in the CPU caches cost a fraction of passes over the whole batch. Results do not depend on the
    chunking.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, gn_weight: torch.Tensor, gn_bias: torch.Tensor,
                squeeze1: torch.Tensor, squeeze2: torch.Tensor, groups: int, eps: float,
                threshold: float, gate: str) -> torch.Tensor:
        batch, _, height, width = x.shape
        squeezed = x.new_empty((batch, squeeze1.shape[0] + squeeze2.shape[0], height, width),
                               dtype=squeeze1.dtype)
        affine = _gate_affine(gn_weight, gn_bias, _accumulation_dtype(x.dtype))
        for part in _image_chunks(x):
            x_acc, reweights, informative, _, _ = _sru_gate(x[part], affine, groups, eps, threshold,
                                                            gate)
            _squeeze(_sru_output(x_acc, reweights, informative, gate, consume=True), squeeze1,
                     squeeze2, out=squeezed[part])
        ctx.config = (groups, eps, threshold, gate)
        ctx.save_for_backward(x, gn_weight, gn_bias, squeeze1, squeeze2)
        return squeezed

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_squeezed: torch.Tensor):
        x, gn_weight, gn_bias, squeeze1, squeeze2 = ctx.saved_tensors
        groups, eps, threshold, gate = ctx.config
        want_squeeze_grads = ctx.needs_input_grad[3] or ctx.needs_input_grad[4]
        grad_squeezed = grad_squeezed.to(squeeze1.dtype).contiguous()
        grad_x = torch.empty_like(x)
        grad_squeezes = None
        grad_scaled_affine = None  # ∂ of GroupNorm's scaled γ and β, summed over the chunks
        affine = _gate_affine(gn_weight, gn_bias, _accumulation_dtype(x.dtype))
        for part in _image_chunks(x):
            chunk_squeezes, chunk_affine = _sru_chunk_backward(
                x[part], grad_squeezed[part], affine, squeeze1, squeeze2, ctx.config,
                want_squeeze_grads, grad_x[part])
            grad_squeezes = _accumulate(grad_squeezes, chunk_squeezes)
            grad_scaled_affine = _accumulate(grad_scaled_affine, chunk_affine)

        grad_gn_weight = grad_gn_bias = None
        if gate == 'soft' and grad_scaled_affine is not None:
            grad_scaled_gamma, grad_scaled_beta = grad_scaled_affine
            gamma = gn_weight.to(grad_scaled_gamma.dtype)
            gamma_sum = gamma.sum()
            gamma_weights = gamma / gamma_sum
            # z = W_γ·(γ·n + β) with W_γ = γ/Σγ: chain the scaled-affine gradients back to γ and β.
            grad_gamma_weights = gamma * grad_scaled_gamma + gn_bias.to(gamma.dtype) * grad_scaled_beta
            grad_gn_weight = (gamma_weights * grad_scaled_gamma + grad_gamma_weights / gamma_sum
                              - (grad_gamma_weights * gamma).sum() / gamma_sum ** 2).to(gn_weight.dtype)
            grad_gn_bias = (gamma_weights * grad_scaled_beta).to(gn_bias.dtype)
        grad_squeeze1, grad_squeeze2 = ((None, None) if grad_squeezes is None else
                                        (grad.to(squeeze1.dtype) for grad in grad_squeezes))
        return (grad_x, grad_gn_weight, grad_gn_bias, grad_squeeze1, grad_squeeze2,
                None, None, None, None)


def _accumulate(total: Optional[List[Optional[torch.Tensor]]],
                part: Optional[List[Optional[torch.Tensor]]]) -> Optional[List[Optional[torch.Tensor]]]:
    """Sum, entry by entry and in place in ``total``, two lists of chunk gradients (None: not needed)."""
    if total is None or part is None:
        return part if total is None else total
    return [None if a is None else a.add_(b) for a, b in zip(total, part)]


def _sru_chunk_backward(x: torch.Tensor, grad_squeezed: torch.Tensor,
                        affine: Tuple[torch.Tensor, torch.Tensor], squeeze1: torch.Tensor,
                        squeeze2: torch.Tensor, config: Tuple[int, float, float, str],
                        want_squeeze_grads: bool, grad_x: torch.Tensor):
    """Backward of :class:`SRUSqueezeFunction` over a chunk of images; writes ∂X into ``grad_x``.

    ``affine`` is :func:`_gate_affine` in the accumulation dtype.

    Returns:
        The squeeze weight gradients (or None) and, for the soft gate, the gradients of GroupNorm's
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
    grad_squeezes = None
    if want_squeeze_grads:
        grad_squeezes = [grad.to(x_acc.dtype) for grad in _split_weight_grads(
            grad_pixels, strided_pixels(y.to(squeeze1.dtype)), [squeeze1, squeeze2])]
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
        grad_z, x_acc, mean, rstd, affine[0], batch, channels, x[0, 0].numel(), groups,
        [True, True, True])
    grad_x_acc.add_(grad_x_gn)
    if grad_acc is None:
        grad_x.copy_(grad_x_acc)
    return grad_squeezes, [grad_scaled_gamma, grad_scaled_beta]


class CRUFunction(torch.autograd.Function):
    """CRU transform and fuse from the squeezed map S: saves S and Y1 − Y2 (``'joint'``: also Y2).

    As in :class:`SRUSqueezeFunction`, both passes walk the batch in image chunks (the fuse weights
    are per image), so the fuse's elementwise passes run on maps that stay in the CPU caches.
    """

    @staticmethod
    def forward(ctx, squeezed: torch.Tensor, gwc_weight: torch.Tensor, gwc_bias: Optional[torch.Tensor],
                pwc1_weight: torch.Tensor, pwc2_weight: Optional[torch.Tensor], stride: int,
                dilation: int, gwc_groups: int, fuse: str) -> torch.Tensor:
        batch, _, height, width = squeezed.shape
        # Every branch gives ⌈H/s⌉×⌈W/s⌉ outputs; each chunk writes its slice of the whole output.
        out = squeezed.new_empty((batch, gwc_weight.shape[0], -(-height // stride), -(-width // stride)))
        parts = _image_chunks(out)
        diffs, fuse_weights, lower_outputs = [], [], []
        for part in parts:
            diff, weights, y2 = _cru_chunk_forward(squeezed[part], gwc_weight, gwc_bias, pwc1_weight,
                                                   pwc2_weight, stride, dilation, gwc_groups, fuse,
                                                   out=out[part])
            diffs.append(diff)
            fuse_weights.append(weights)
            if y2 is not None:
                lower_outputs.append(y2)
        ctx.parts = parts
        ctx.config = (stride, dilation, gwc_groups, fuse, gwc_bias is not None)
        ctx.save_for_backward(squeezed, gwc_weight, pwc1_weight, pwc2_weight, torch.cat(fuse_weights),
                              *diffs, *lower_outputs)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        squeezed, gwc_weight, pwc1_weight, pwc2_weight, fuse_weights, *maps = ctx.saved_tensors
        parts = ctx.parts
        diffs, lower_outputs = maps[:len(parts)], maps[len(parts):] or [None] * len(parts)
        grad_out = grad_out.to(squeezed.dtype).contiguous()
        grad_squeezed = torch.empty_like(squeezed) if ctx.needs_input_grad[0] else None
        grad_params = None
        for part, diff, y2 in zip(parts, diffs, lower_outputs):
            grad_params = _accumulate(grad_params, _cru_chunk_backward(
                grad_out[part], squeezed[part], diff, fuse_weights[part], y2, gwc_weight, pwc1_weight,
                pwc2_weight, ctx.config, ctx.needs_input_grad,
                None if grad_squeezed is None else grad_squeezed[part]))
        params = (gwc_weight, gwc_weight, pwc1_weight, pwc2_weight)  # the GWC bias has the weight's dtype
        grad_gwc_weight, grad_gwc_bias, grad_pwc1, grad_pwc2 = (
            None if grad is None else grad.to(param.dtype) for grad, param in zip(grad_params, params))
        return (grad_squeezed, grad_gwc_weight, grad_gwc_bias, grad_pwc1, grad_pwc2,
                None, None, None, None)


def _cru_chunk_forward(squeezed: torch.Tensor, gwc_weight: torch.Tensor, gwc_bias: Optional[torch.Tensor],
                       pwc1_weight: torch.Tensor, pwc2_weight: Optional[torch.Tensor], stride: int,
                       dilation: int, gwc_groups: int, fuse: str, out: torch.Tensor):
    """CRU forward over a chunk of images, written to ``out``; returns D = Y1 − Y2, the fuse weights
    and (``'joint'`` only, else None) Y2, for backward."""
    up_squeezed = pwc1_weight.shape[1]
    upper, lower = squeezed[:, :up_squeezed], squeezed[:, up_squeezed:]
    kernel_size = gwc_weight.shape[-1]
    # Y1 = GWC(S_up) + PWC1(S_up): the 1×1 accumulates into the grouped conv's output.
    diff = F.conv2d(upper, gwc_weight, gwc_bias, stride, dilation * (kernel_size // 2), dilation,
                    gwc_groups)
    batch, out_channels, out_h, out_w = diff.shape
    diff.view(batch, out_channels, -1).baddbmm_(pwc1_weight.flatten(1).expand(batch, -1, -1),
                                                strided_pixels(upper, stride))
    # Y2 = [PWC2(S_low), S_low subsampled], built in the output.
    lower_map = lower[:, :, ::stride, ::stride]
    if pwc2_weight is None:
        out.copy_(lower_map)
    else:
        generated = batched_pointwise(pwc2_weight, strided_pixels(lower, stride))
        torch.cat([generated.view(batch, -1, out_h, out_w), lower_map], dim=1, out=out)
    diff.sub_(out)
    acc_dtype = _accumulation_dtype(diff.dtype)
    pooled_diff = diff.mean(dim=(2, 3), dtype=acc_dtype)
    y2 = None
    if fuse == 'paper':
        # Per-channel two-way softmax: β1 = sigmoid(S1 − S2), Z = Y2 + β1·(Y1 − Y2).
        weights = torch.sigmoid(pooled_diff)
        out.addcmul_(diff, weights[..., None, None].to(out.dtype))
    else:
        y2 = out.clone()
        pooled_y2 = y2.mean(dim=(2, 3), dtype=acc_dtype)
        # Z = β1·Y1 + β2·Y2 = β1·(Y1 − Y2) + (β1 + β2)·Y2.
        weights = torch.softmax(torch.cat([pooled_diff + pooled_y2, pooled_y2], 1), dim=1)
        first, second = weights.chunk(2, dim=1)
        out.mul_((first + second)[..., None, None].to(out.dtype))
        out.addcmul_(diff, first[..., None, None].to(out.dtype))
    return diff, weights, y2


def _cru_chunk_backward(grad_out: torch.Tensor, squeezed: torch.Tensor, diff: torch.Tensor,
                        weights: torch.Tensor, y2: Optional[torch.Tensor], gwc_weight: torch.Tensor,
                        pwc1_weight: torch.Tensor, pwc2_weight: Optional[torch.Tensor], config,
                        needs_input_grad, grad_squeezed: Optional[torch.Tensor]) -> List[Optional[torch.Tensor]]:
    """CRU backward over a chunk of images; writes ∂S into ``grad_squeezed`` (when given).

    Returns:
        The gradients of the GWC weight and bias, PWC1 and PWC2, each None when not needed, summed
        over the chunk, in the accumulation dtype.
    """
    stride, dilation, gwc_groups, fuse, has_bias = config
    batch, out_channels, out_h, out_w = grad_out.shape
    pixels = out_h * out_w
    acc_dtype = _accumulation_dtype(diff.dtype)
    up_squeezed = pwc1_weight.shape[1]
    upper, lower = squeezed[:, :up_squeezed], squeezed[:, up_squeezed:]

    # Fuse backward: Z = Y2 + β1·D ('paper') or Z = (β1 + β2)·Y2 + β1·D ('joint'), D = Y1 − Y2.
    grad_first = torch.einsum('bcp,bcp->bc', grad_out.view(batch, out_channels, -1).to(acc_dtype),
                              diff.view(batch, out_channels, -1).to(acc_dtype))
    if fuse == 'paper':
        first = weights
        grad_pooled_diff = grad_first * first * (1 - first)
        grad_y2_scale = None
    else:
        first, second = weights.chunk(2, dim=1)
        grad_second = torch.einsum('bcp,bcp->bc', grad_out.view(batch, out_channels, -1).to(acc_dtype),
                                   y2.view(batch, out_channels, -1).to(acc_dtype))
        grad_logits = torch.cat([grad_first + grad_second, grad_second], 1)
        grad_logits = weights * (grad_logits - (weights * grad_logits).sum(1, keepdim=True))
        # The logits are (S_D + S_Y2, S_Y2): route them to the pooled D and pooled Y2.
        grad_pooled_diff = grad_logits[:, :out_channels]
        grad_y2_scale = grad_logits.view(batch, 2, out_channels).sum(1)
    # ∂D = g·β1 + ∂S_D/P and ∂Y1 = ∂D; ∂Y2 = g − ∂D ('paper') or g·(β1 + β2) + ∂S_Y2/P − ∂D
    # ('joint'), P = H'·W' (the pools are means).
    grad_diff = torch.addcmul((grad_pooled_diff / pixels)[..., None, None].to(grad_out.dtype),
                              grad_out, first[..., None, None].to(grad_out.dtype))
    if fuse == 'paper':
        grad_y2 = torch.sub(grad_out, grad_diff)
    else:
        grad_y2 = torch.addcmul((grad_y2_scale / pixels)[..., None, None].to(grad_out.dtype),
                                grad_out, (first + second)[..., None, None].to(grad_out.dtype))
        grad_y2.sub_(grad_diff)

    # Y1 = GWC(S_up) + PWC1(S_up).
    grad_upper, grad_gwc_weight, grad_gwc_bias = torch.ops.aten.convolution_backward(
        grad_diff, upper, gwc_weight, [out_channels] if has_bias else None, [stride, stride],
        [dilation * (gwc_weight.shape[-1] // 2)] * 2, [dilation, dilation], False, [0, 0],
        gwc_groups, [grad_squeezed is not None, needs_input_grad[1], has_bias and needs_input_grad[2]])
    grad_diff_pixels = grad_diff.view(batch, out_channels, -1)
    grad_pwc1 = None
    if needs_input_grad[3]:
        grad_pwc1 = pointwise_weight_grad(grad_diff_pixels, strided_pixels(upper, stride))
    if grad_squeezed is not None:
        add_pointwise_input_grad(grad_upper, pwc1_weight, grad_diff_pixels, stride)
    del grad_diff, grad_diff_pixels
    # Y2 = [PWC2(S_low), S_low[::s, ::s]].
    generated = pwc2_weight.shape[0] if pwc2_weight is not None else 0
    grad_y2_pixels = grad_y2.view(batch, out_channels, -1)
    grad_pwc2 = None
    if generated and needs_input_grad[4]:
        grad_pwc2 = pointwise_weight_grad(grad_y2_pixels[:, :generated], strided_pixels(lower, stride))
    if grad_squeezed is not None:
        # The reused part's gradient first, then PWC2's input gradient accumulates onto it.
        if stride == 1:
            grad_lower = grad_y2[:, generated:].contiguous()
        else:
            grad_lower = torch.zeros_like(lower)
            grad_lower[:, :, ::stride, ::stride] = grad_y2[:, generated:]
        if generated:
            add_pointwise_input_grad(grad_lower, pwc2_weight, grad_y2_pixels[:, :generated], stride)
        torch.cat([grad_upper, grad_lower], dim=1, out=grad_squeezed)
    return [None if grad is None else grad.to(acc_dtype)
            for grad in (grad_gwc_weight, grad_gwc_bias, grad_pwc1, grad_pwc2)]


@register_flop_handle('SRUSqueezeFunction')
def sru_squeeze_flops(inputs, outputs) -> int:
    """GroupNorm as mmengine counts ``nn.GroupNorm`` (5 per element) plus the two squeeze convs."""
    batch, channels, height, width = value_shape(inputs[0])
    squeeze1, squeeze2 = value_shape(inputs[3]), value_shape(inputs[4])
    pixels = batch * height * width
    return 5 * channels * pixels + pixels * (squeeze1[0] * squeeze1[1] + squeeze2[0] * squeeze2[1])


@register_flop_handle('CRUFunction')
def cru_flops(inputs, outputs) -> int:
    """GWC + PWC1 + PWC2 MACs plus the global average pool of Y1 and Y2, as the reference counts."""
    batch, out_channels, out_h, out_w = value_shape(outputs[0])
    weights = [shape for shape in map(value_shape, inputs[1:]) if shape is not None and len(shape) == 4]
    gwc, pwc1 = weights[0], weights[1]
    pixels = batch * out_h * out_w
    flops = pixels * out_channels * (gwc[1] * gwc[2] * gwc[3] + pwc1[1]) + 2 * pixels * out_channels
    if len(weights) > 2:
        flops += pixels * weights[2][0] * weights[2][1]
    return flops


class SCConv(nn.Module):
    """SCConv (SRU → CRU), a drop-in replacement for a k×k convolution.

    Args:
        in_channels: C1, even.
        out_channels: C2, divisible by ``gwc_groups`` and at least ⌊(C1 − ⌊α·C1⌋)/r⌋.
        kernel_size: k of the group-wise conv, odd.
        stride: stride (GWC, PWC1, PWC2 and the reused lower part).
        dilation: dilation of the group-wise conv.
        alpha: split ratio α in (0, 1).
        squeeze_ratio: r.
        gwc_groups: g, dividing ⌊α·C1⌋ // r and C2.
        gn_groups: GroupNorm groups, reduced to gcd(C1, gn_groups).
        gate_threshold: t in (0, 1).
        gate: ``'soft'`` (default) or ``'hard'``.
        fuse: ``'paper'`` (default) or ``'joint'``.
        gwc_bias: give GWC a bias (cheng-haha's code does; the paper does not).
        impl: ``'auto'``/``'fast'`` or ``'reference'``.

    Shapes:
        x: B×C1×H×W → B×C2×⌈H/s⌉×⌈W/s⌉.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, alpha: float = 0.5, squeeze_ratio: int = 2, gwc_groups: int = 2,
                 gn_groups: int = 4, gate_threshold: float = 0.5, gate: str = 'soft',
                 fuse: str = 'paper', gwc_bias: bool = False, impl: str = 'auto') -> None:
        super().__init__()
        _check_arguments(in_channels, out_channels, kernel_size, stride, dilation, alpha,
                         squeeze_ratio, gwc_groups, gn_groups, gate_threshold, gate, fuse, impl)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation
        self.impl = impl
        self.sru = SRU(in_channels, gn_groups, gate_threshold, gate)
        self.cru = CRU(in_channels, out_channels, kernel_size, stride, dilation, alpha, squeeze_ratio,
                       gwc_groups, gwc_bias, fuse)

    def extra_repr(self) -> str:
        return f'impl={self.impl!r}, gate={self.sru.gate!r}, fuse={self.cru.fuse!r}'

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'SCConv expects B×{self.in_channels}×H×W input, got {tuple(x.shape)}.')
        if self.impl == 'reference':
            return self.cru(self.sru(x))
        sru, cru = self.sru, self.cru
        convs = [cru.squeeze1.weight, cru.squeeze2.weight, cru.gwc.weight, cru.gwc.bias,
                 cru.pwc1.weight, cru.pwc2.weight if cru.pwc2 is not None else None]
        device_type = x.device.type
        if torch.is_autocast_enabled(device_type):
            dtype = torch.get_autocast_dtype(device_type)
            convs = [param.to(dtype) if param is not None else None for param in convs]
        squeeze1, squeeze2, gwc_weight, gwc_bias, pwc1, pwc2 = convs
        with torch.autocast(device_type, enabled=False):
            squeezed = SRUSqueezeFunction.apply(x, sru.gn.weight, sru.gn.bias, squeeze1, squeeze2,
                                                sru.gn.num_groups, sru.gn.eps, sru.gate_threshold,
                                                sru.gate)
            return CRUFunction.apply(squeezed, gwc_weight, gwc_bias, pwc1, pwc2, self.stride,
                                     self.dilation, cru.gwc.groups, cru.fuse)


def _check_arguments(in_channels, out_channels, kernel_size, stride, dilation, alpha, squeeze_ratio,
                     gwc_groups, gn_groups, gate_threshold, gate, fuse, impl) -> None:
    """Raise a one-sentence ValueError for the first argument SCConv cannot honour."""
    for name, value in (('in_channels', in_channels), ('out_channels', out_channels),
                        ('stride', stride), ('dilation', dilation), ('squeeze_ratio', squeeze_ratio),
                        ('gwc_groups', gwc_groups), ('gn_groups', gn_groups)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f'{name} must be a positive integer, got {value!r}.')
    if in_channels % 2:
        raise ValueError(f'in_channels must be even (the SRU swaps channel halves), got {in_channels}.')
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f'kernel_size must be an odd positive integer, got {kernel_size!r}.')
    if not 0 < alpha < 1:
        raise ValueError(f'alpha must lie strictly between 0 and 1, got {alpha!r}.')
    up, low, up_squeezed, low_squeezed = cru_widths(in_channels, alpha, squeeze_ratio)
    if min(up_squeezed, low_squeezed) < 1:
        raise ValueError(f'in_channels={in_channels} with alpha={alpha} and squeeze_ratio='
                         f'{squeeze_ratio} must leave both CRU parts (now {up} and {low} channels) at '
                         f'least squeeze_ratio channels.')
    if up_squeezed % gwc_groups or out_channels % gwc_groups:
        raise ValueError(f'gwc_groups must divide the squeezed upper width {up_squeezed} and '
                         f'out_channels {out_channels}, got {gwc_groups}.')
    if out_channels < low_squeezed:
        raise ValueError(f'out_channels must be at least the squeezed lower width {low_squeezed} '
                         f'(it is reused as output channels), got {out_channels}.')
    if not 0 < gate_threshold < 1:
        raise ValueError(f'gate_threshold must lie strictly between 0 and 1, got {gate_threshold!r}.')
    for name, value, allowed in (('gate', gate, GATES), ('fuse', fuse, FUSES), ('impl', impl, IMPLS)):
        if value not in allowed:
            raise ValueError(f'{name} must be one of {allowed}, got {value!r}.')
