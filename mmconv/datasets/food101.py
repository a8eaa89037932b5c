"""Food-101 (Bossard et al., ECCV 2014) with its official train/test split."""
import os.path as osp
from typing import List

from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

FOOD101_LAYOUT = ('data_root/images/<class>/<id>.jpg and data_root/meta/{classes,train,test}.txt '
                  '(the extracted food-101.tar.gz)')


# mmpretrain 1.2 registers a Food101 of its own (same layout, no missing-data message): this one
# replaces it under the same name, so configs keep saying type='Food101'.
@DATASETS.register_module(force=True)
class Food101(BaseDataset):
    """Food-101: 101 classes, 750 training and 250 test images each.

    Args:
        data_root (str): The extracted archive, holding ``images/`` and ``meta/``.
        split (str): ``'train'`` or ``'test'``. Defaults to ``'train'``.
        **kwargs: Passed to :class:`mmpretrain.datasets.BaseDataset`.
    """

    def __init__(self, data_root: str, split: str = 'train', **kwargs) -> None:
        if split not in ('train', 'test'):
            raise ValueError(f"Food101 split must be 'train' or 'test', got {split!r}.")
        classes_file = osp.join(data_root, 'meta', 'classes.txt')
        if not osp.isfile(classes_file):
            raise FileNotFoundError(f'Food-101 not found: {classes_file} is missing; expected {FOOD101_LAYOUT}.')
        with open(classes_file) as f:
            classes = [line.strip() for line in f if line.strip()]
        self.split = split
        super().__init__(
            ann_file=osp.join('meta', f'{split}.txt'), data_root=data_root, data_prefix='images',
            metainfo=dict(classes=classes), **kwargs)

    def load_data_list(self) -> List[dict]:
        class_index = {name: i for i, name in enumerate(self.CLASSES)}
        data_list = []
        with open(self.ann_file) as f:
            for line in f:
                image_id = line.strip()
                if image_id:
                    data_list.append(
                        dict(
                            img_path=osp.join(self.img_prefix, f'{image_id}.jpg'),
                            gt_label=class_index[image_id.split('/')[0]]))
        return data_list
