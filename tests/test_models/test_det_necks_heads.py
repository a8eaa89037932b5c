"""The involution / C-volution FPN, RPN head and FCN mask head: structure, parameter counts by
hand, initialisation, registry names, a training step of a whole detector, and mmconv importing
without mmdet."""
import subprocess
import sys

import pytest
import torch

pytest.importorskip('mmdet')

from mmcv.cnn import ConvModule  # noqa: E402
from mmdet.registry import MODELS as MMDET_MODELS  # noqa: E402
from mmengine.config import ConfigDict  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402

import mmconv.models  # noqa: E402,F401
from mmconv.models.heads import InvolutionFCNMaskHead, InvolutionRPNHead  # noqa: E402
from mmconv.models.necks import CVolutionFPN, InvolutionFPN, OperatorFPN  # noqa: E402
from mmconv.ops import CVolution, Involution  # noqa: E402


@pytest.fixture(autouse=True)
def mmdet_scope():
    init_default_scope('mmdet')


def involution_params(channels: int, kernel_size: int = 7) -> int:
    """Hand count: reduce 1×1 (no bias) + BN + span 1×1 (bias), r = 4, 16 channels per group."""
    hidden, groups = channels // 4, channels // 16
    return channels * hidden + 2 * hidden + hidden * kernel_size ** 2 * groups + \
        kernel_size ** 2 * groups


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def pyramid(channels=(32, 64, 128), size=32):
    return tuple(torch.rand(2, c, size >> i, size >> i) for i, c in enumerate(channels))


def test_involution_fpn_swaps_only_the_level_output_convs():
    in_channels = [32, 64, 128]
    neck = InvolutionFPN(in_channels, 32, num_outs=5, add_extra_convs='on_input')
    plain = MMDET_MODELS.build(
        dict(type='FPN', in_channels=in_channels, out_channels=32, num_outs=5, add_extra_convs='on_input'))
    assert [type(m.conv) for m in neck.fpn_convs[:3]] == [type(neck.fpn_convs[0].conv)] * 3
    assert all(isinstance(m.conv, Involution) and m.conv.kernel_size == 7 for m in neck.fpn_convs[:3])
    # The strided extra-level convs stay convolutions.
    assert all(isinstance(m.conv, torch.nn.Conv2d) and m.conv.stride == (2, 2) for m in neck.fpn_convs[3:])
    conv3x3 = 32 * 32 * 9 + 32
    assert n_params(plain) - n_params(neck) == 3 * (conv3x3 - involution_params(32))
    outs = neck(pyramid())
    assert [tuple(o.shape) for o in outs] == [(2, 32, 32 >> i, 32 >> i) for i in range(5)]


def test_fpn_handles_level_sizes_that_do_not_halve_exactly():
    neck = InvolutionFPN([32, 64], 32, num_outs=3)
    outs = neck((torch.rand(1, 32, 25, 19), torch.rand(1, 64, 13, 10)))
    assert [tuple(o.shape[2:]) for o in outs] == [(25, 19), (13, 10), (7, 5)]


def test_cvolution_fpn_uses_four_channel_groups_and_output_op_cfg_overrides():
    neck = CVolutionFPN([32, 64], 32, num_outs=2)
    assert all(isinstance(m.conv, CVolution) and m.conv.conv_q.groups == 4 for m in neck.fpn_convs)
    custom = OperatorFPN([32, 64], 32, num_outs=2, output_op_cfg=dict(type='Conv2d'), output_kernel_size=5)
    assert all(
        type(m.conv) is torch.nn.Conv2d and m.conv.kernel_size == (5, 5) and m.conv.bias is None
        for m in custom.fpn_convs)
    with pytest.raises(ValueError, match='output_kernel_size'):
        OperatorFPN([32, 64], 32, num_outs=2, output_kernel_size=4)


def test_official_neck_init_is_xavier_uniform_on_every_conv_including_the_operators():
    neck = InvolutionFPN([32, 64], 32, num_outs=2, op_init='official')
    neck.init_weights()
    for name, module in neck.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
            fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
            bound = (6 / (fan_in + fan_out))**0.5
            # PyTorch's default bound 1/sqrt(fan_in) is larger for every conv here.
            assert module.weight.abs().max() <= bound, name
            assert module.weight.abs().max() > 0.8 * bound, name
            assert module.bias is None or not module.bias.any(), name


def test_necks_and_heads_resolve_by_name_under_the_mmdet_scope():
    neck = MODELS.build(dict(type='InvolutionFPN', in_channels=[32, 64], out_channels=32, num_outs=2))
    assert type(neck) is InvolutionFPN
    assert type(MODELS.build(dict(type='CVolutionFPN', in_channels=[32], out_channels=32, num_outs=1))) is CVolutionFPN
    assert type(MMDET_MODELS.build(dict(type='InvolutionRPNHead', in_channels=32,
                                        feat_channels=32))) is InvolutionRPNHead
    assert type(MMDET_MODELS.build(dict(type='InvolutionFCNMaskHead', in_channels=32,
                                        conv_out_channels=32, num_classes=2))) \
        is InvolutionFCNMaskHead


def test_involution_rpn_head_forward_and_init():
    head = InvolutionRPNHead(in_channels=32, feat_channels=32)
    assert isinstance(head.rpn_conv, Involution) and head.rpn_conv.kernel_size == 7
    plain = MMDET_MODELS.build(dict(type='RPNHead', in_channels=32, feat_channels=32))
    assert n_params(plain) - n_params(head) == 32 * 32 * 9 + 32 - involution_params(32)
    head.init_weights()
    assert head.rpn_cls.weight.std() < 0.02 and head.rpn_reg.weight.std() < 0.02
    # The kernel generator keeps a Kaiming (fan_out) init, not the N(0, 0.01) of the 1×1 convs.
    reduce = head.rpn_conv.conv1.conv.weight
    assert reduce.std().item() == pytest.approx((2 / reduce.shape[0])**0.5, rel=0.3)
    scores, deltas = head(pyramid((32, 32, 32)))
    anchors = head.num_base_priors  # AnchorHead's default generator: 3 scales x 3 ratios
    assert [tuple(s.shape) for s in scores] == [(2, anchors, 32 >> i, 32 >> i) for i in range(3)]
    assert [tuple(d.shape) for d in deltas] == [(2, 4 * anchors, 32 >> i, 32 >> i) for i in range(3)]
    with pytest.raises(ValueError, match='in_channels must equal out_channels'):
        InvolutionRPNHead(in_channels=32, feat_channels=64)


def test_involution_mask_head_forward_backward_and_init():
    head = InvolutionFCNMaskHead(num_convs=2, in_channels=32, conv_out_channels=32, num_classes=3, op_init='official')
    assert all(
        isinstance(m, ConvModule) and isinstance(m.conv, Involution) and m.with_activation and not m.with_norm
        for m in head.convs)
    head.init_weights()
    span = head.convs[0].conv.conv2.conv.weight
    assert span.std().item() == pytest.approx((2 / span.shape[0])**0.5, rel=0.3)
    x = torch.rand(4, 32, 14, 14, requires_grad=True)
    out = head(x)
    assert out.shape == (4, 3, 28, 28)
    out.sum().backward()  # ReLU after the operator must not be in place on its output
    assert x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='in_channels must equal out_channels'):
        InvolutionFCNMaskHead(in_channels=32, conv_out_channels=64)


def narrow_mask_rcnn(backbone, neck):
    """A narrow Mask R-CNN with the operator neck, the involution RPN head and mask head."""
    return MODELS.build(
        ConfigDict(
            type='MaskRCNN', data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                                                    std=[58.395, 57.12,
                                                         57.375], bgr_to_rgb=True, pad_mask=True, pad_size_divisor=32),
            backbone=dict(type=backbone, depth=26, stem_channels=32, base_channels=16, out_indices=(0, 1, 2, 3),
                          init_cfg=None),
            neck=dict(type=neck, in_channels=[64, 128, 256, 512], out_channels=32, num_outs=5), rpn_head=dict(
                type='InvolutionRPNHead', in_channels=32, feat_channels=32,
                anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0],
                                      strides=[4, 8, 16, 32, 64]),
                bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                                target_stds=[1.0] * 4), loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True,
                                                                      loss_weight=1.0),
                loss_bbox=dict(type='L1Loss', loss_weight=1.0)), roi_head=dict(
                    type='StandardRoIHead',
                    bbox_roi_extractor=dict(type='SingleRoIExtractor', out_channels=32, featmap_strides=[4, 8, 16, 32],
                                            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0)),
                    bbox_head=dict(
                        type='Shared2FCBBoxHead', in_channels=32, fc_out_channels=64, roi_feat_size=7, num_classes=2,
                        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                                        target_stds=[0.1, 0.1, 0.2,
                                                     0.2]), loss_cls=dict(type='CrossEntropyLoss', loss_weight=1.0),
                        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
                    mask_roi_extractor=dict(type='SingleRoIExtractor', out_channels=32, featmap_strides=[4, 8, 16, 32],
                                            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0)),
                    mask_head=dict(type='InvolutionFCNMaskHead', num_convs=2, in_channels=32, conv_out_channels=32,
                                   num_classes=2, loss_mask=dict(type='CrossEntropyLoss', use_mask=True,
                                                                 loss_weight=1.0))),
            train_cfg=dict(
                rpn=dict(
                    assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
                                  ignore_iof_thr=-1), sampler=dict(type='RandomSampler', num=64, pos_fraction=0.5,
                                                                   neg_pos_ub=-1, add_gt_as_proposals=False),
                    allowed_border=-1, pos_weight=-1, debug=False),
                rpn_proposal=dict(nms_pre=200, max_per_img=100, nms=dict(type='nms', iou_threshold=0.7),
                                  min_bbox_size=0),
                rcnn=dict(
                    assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5,
                                  ignore_iof_thr=-1), sampler=dict(type='RandomSampler', num=32, pos_fraction=0.25,
                                                                   neg_pos_ub=-1, add_gt_as_proposals=True),
                    mask_size=28, pos_weight=-1, debug=False)), test_cfg=dict(
                        rpn=dict(nms_pre=200, max_per_img=100, nms=dict(type='nms', iou_threshold=0.7),
                                 min_bbox_size=0), rcnn=dict(score_thr=0.0, nms=dict(type='nms', iou_threshold=0.5),
                                                             max_per_img=20, mask_thr_binary=0.5))))


@pytest.mark.parametrize('backbone, neck', [('RedNet', 'InvolutionFPN'), ('CedNet', 'CVolutionFPN')])
def test_mask_rcnn_with_operator_neck_and_heads_trains_one_step(backbone, neck):
    from mmdet.testing import demo_mm_inputs
    model = narrow_mask_rcnn(backbone, neck)
    model.init_weights()
    packed = demo_mm_inputs(2, [[3, 64, 64], [3, 61, 50]], num_classes=2, with_mask=True)
    data = model.data_preprocessor(packed, True)
    losses = model(**data, mode='loss')
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(v) for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    grads = [m.conv.conv2.conv.weight.grad for m in model.roi_head.mask_head.convs]
    grads += [model.rpn_head.rpn_conv.conv2.conv.weight.grad, model.neck.fpn_convs[0].conv.conv2.conv.weight.grad]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        results = model(**model.data_preprocessor(packed, False), mode='predict')
    assert results[0].pred_instances.masks.shape[1:] == (64, 64)


def test_mmconv_models_import_without_mmdet():
    """With mmdet unimportable, mmconv.models still imports and registers no detection part."""
    code = ('import sys; sys.modules["mmdet"] = None\n'
            'import mmconv.models\n'
            'from mmengine.registry import MODELS\n'
            'assert MODELS.get("RedNet") is not None\n'
            'assert MODELS.get("InvolutionFPN") is None\n'
            'assert "mmconv.models.heads" not in sys.modules\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            cwd=mmconv.models.__path__[0] + '/../..')
    assert result.returncode == 0, result.stderr[-3000:]


def test_mask_rcnn_trains_on_images_without_boxes():
    """No ground truth: the mask head sees an empty batch of RoIs, as mmdet's FCNMaskHead does."""
    from mmdet.testing import demo_mm_inputs
    torch.manual_seed(0)
    model = narrow_mask_rcnn('RedNet', 'InvolutionFPN')
    model.init_weights()
    packed = demo_mm_inputs(2, [[3, 64, 64], [3, 61, 50]], num_items=[0, 0], num_classes=2, with_mask=True)
    losses = model(**model.data_preprocessor(packed, True), mode='loss')
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(v) for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total) and losses['loss_mask'].item() == 0
    total.backward()
    mask_grads = [m.conv.conv2.conv.weight.grad for m in model.roi_head.mask_head.convs]
    assert all(g is None or not g.any() for g in mask_grads)
    assert model.rpn_head.rpn_conv.conv2.conv.weight.grad.abs().sum() > 0  # negatives still train
