"""Each named protocol pinned to its sources: one table per preset of (setting, the source's value, the source's
repository @ commit : file : line and that line's text), which the preset as it resolves must equal; where ours
differs on purpose (or the source cannot run), the entry holds our value and why. tests/test_protocol_sources.py
checks every entry, so a change that drifts from a source fails with the line to read;
`python -m gendistill.evaluation.protocol_sources rded [--dataset imagenet]` prints the tables. The commits are the ones
evaluation/protocols.py cites; `verify_quotes` checks each quoted line against clones of the sources.

A setting names one value of the resolved configuration (`evaluation.<key>`, `teacher.<key>`), of an evaluation
run's recipe (`run[<run key>].<recipe key>`, e.g. run[full].epochs), of the teacher's training recipe
(`teacher_recipe.<key>`), or of the code the preset relies on (`seeds`: how many runs; `published_teacher`; `dsa.*`;
`lr_factor[<schedule>](e, E[, step])`: the lr multiplier at 0-based epoch e of E; `export.*`: the export formats'
constants; `patch_shuffle`).
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from .protocols import Context, apply_protocol

CH = "DataDistillation/ECCV2024-Dataset-Distillation-Challenge@3bd9d13"
RD = "LINs-lab/RDED@3f6453d"
SR = "VILA-Lab/SRe2L@8d00cba"
DDR = "NUS-HPC-AI-Lab/DD-Ranking@b8b0966"
DDE = "NUS-HPC-AI-Lab/DD-Ranking@9ee9a16"  # the eval branch: the leaderboard's configs
TV = "pytorch/vision@bde124ee2f3419fe31ad79c858af40206e8bf792"
TVW = "torchvision==0.29.1"  # the installed package (the pretrained weights' published accuracy)

SAME = object()  # ours equals the source's value


class Pin(NamedTuple):
    setting: str
    source: object  # the source's value, in our keys' terms
    where: str  # "owner/repo@commit:path:line"
    quote: str  # (a piece of) that line
    ours: object = SAME  # our value where it differs from the source's
    why: str = ""  # why ours differs (or a note where it does not)

    @property
    def expected(self):
        return self.source if self.ours is SAME else self.ours


def _cos_half(e: int, epochs: int) -> float:  # RDED's / DD-Ranking's LambdaLR, as written there
    return 0.5 * (1.0 + math.cos(math.pi * e / epochs / 2))


def _cos(e: int, epochs: int) -> float:  # SRe2L's train_KD.py --cos, CosineAnnealingLR(T_max = epochs)
    return 0.5 * (1.0 + math.cos(math.pi * e / epochs))


CIFAR100 = Context("cifar100", 32, 10, 100)
TINY = Context("tinyimagenet", 64, 10, 200)
IMAGENET = Context("imagenet", 224, 10, 1000)
CIFAR10 = Context("cifar10", 32, 10, 10)

DSA_PINS = (  # the DSA paper's parameters, as the challenge's ParamDiffAug holds them
    Pin("dsa.flip", 0.5, f"{CH}:utils/utils.py:28", "self.prob_flip = 0.5"),
    Pin("dsa.scale", 1.2, f"{CH}:utils/utils.py:29", "self.ratio_scale = 1.2"),
    Pin("dsa.rotate_degrees", 15.0, f"{CH}:utils/utils.py:30", "self.ratio_rotate = 15.0"),
    Pin("dsa.crop", 0.125, f"{CH}:utils/utils.py:31", "self.ratio_crop_pad = 0.125"),
    Pin("dsa.cutout", 0.5, f"{CH}:utils/utils.py:32", "self.ratio_cutout = 0.5"),
    Pin("dsa.brightness", 1.0, f"{CH}:utils/utils.py:33", "self.brightness = 1.0"),
    Pin("dsa.saturation", 2.0, f"{CH}:utils/utils.py:34", "self.saturation = 2.0"),
    Pin("dsa.contrast", 0.5, f"{CH}:utils/utils.py:35", "self.contrast = 0.5"),
)

_CHALLENGE = (
    Pin("evaluation.models", ["convnet_d3"], f"{CH}:evaluate.py:130", "= 128, 3, 'relu', 'instancenorm', 'avgpooling'"),
    Pin("evaluation.epochs", 1001, f"{CH}:evaluate.py:145", "for ep in tqdm(range(Epoch+1)):"),
    Pin("evaluation.step_epoch", 502, f"{CH}:evaluate.py:141", "lr_schedule = [Epoch//2+1]"),
    Pin("evaluation.schedule", "step_restart", f"{CH}:evaluate.py:149", "optimizer = torch.optim.SGD(net.parameters()"),
    Pin("evaluation.optimizer", "sgd", f"{CH}:evaluate.py:142", "optimizer = torch.optim.SGD("),
    Pin("evaluation.lr", 0.01, f"{CH}:evaluate.py:139", "lr = float(0.01)"),
    Pin("evaluation.momentum", 0.9, f"{CH}:evaluate.py:142", "momentum=0.9"),
    Pin("evaluation.weight_decay", 0.0005, f"{CH}:evaluate.py:142", "weight_decay=0.0005"),
    Pin("evaluation.batch_size", 256, f"{CH}:evaluate.py:123", "batch_size=256, shuffle=True"),
    Pin("evaluation.augment", "dsa", f"{CH}:evaluate.py:146", "aug = True, dsa_param=param"),
    Pin("evaluation.mix", "none", f"{CH}:evaluate.py:65", "img = DiffAugment(img, dsa_strategy, param=dsa_param)"),
    Pin("evaluation.labels", "hard", f"{CH}:evaluate.py:119", "labels_train = torch.tensor([np.ones(10)*i"),
    Pin("evaluation.accuracy", "final", f"{CH}:evaluate.py:151", "_, acc_test = epoch('test', testloader"),
    Pin(
        "seeds",
        3,
        f"{CH}:evaluate.py:134",
        "rounds = 3",
        why="the same count; the script's runs are unseeded, ours seeded by evaluation.seeds",
    ),
    Pin("evaluation.test_resize", None, f"{CH}:evaluate.py:126", 'dst_test = TensorDataset(testdata["images_val"]'),
    *DSA_PINS,
    Pin("dsa.align_corners", False, f"{CH}:utils/utils.py:88", "grid = F.affine_grid(theta, x.shape)"),
    Pin("export.challenge.ipc", 10, f"{CH}:evaluate.py:103", "assert data.shape[0] == 10*num_classes"),
    Pin("export.challenge.cifar100.mean", [0.5071, 0.4866, 0.4409], f"{CH}:evaluate.py:25", "[0.5071, 0.4866, 0.4409]"),
    Pin("export.challenge.cifar100.std", [0.2673, 0.2564, 0.2762], f"{CH}:evaluate.py:26", "[0.2673, 0.2564, 0.2762]"),
    Pin("export.challenge.tinyimagenet.mean", [0.485, 0.456, 0.406], f"{CH}:evaluate.py:30", "[0.485, 0.456, 0.406]"),
    Pin("export.challenge.tinyimagenet.std", [0.229, 0.224, 0.225], f"{CH}:evaluate.py:31", "[0.229, 0.224, 0.225]"),
)

_RDED_COMMON = (
    Pin("evaluation.epochs", 300, f"{RD}:argument.py:114", '"--re-epochs", default=300'),
    Pin("evaluation.optimizer", "adamw", f"{RD}:validation/main.py:87", "optimizer = torch.optim.AdamW("),
    Pin("evaluation.weight_decay", 0.01, f"{RD}:argument.py:153", '"--adamw-weight-decay", type=float, default=0.01'),
    Pin("evaluation.decay_norm_and_bias", False, f"{RD}:validation/utils.py:71", 'pname.find("weight") >= 0 and len'),
    Pin("evaluation.schedule", "cosine_half", f"{RD}:argument.py:136", '"--cos", default=True'),
    Pin(
        "lr_factor[cosine_half](150,300)",
        _cos_half(150, 300),
        f"{RD}:validation/main.py:98",
        "0.5 * (1.0 + math.cos(math.pi * step / args.re_epochs / 2))",
    ),
    Pin(
        "lr_factor[cosine](150,300)",
        _cos(150, 300),
        f"{SR}:SRe2L/validate/train_KD.py:149",
        "0.5 * (1. + math.cos(math.pi * step / args.epochs))",
        why="SRe2L's loop uses the full cosine: schedule: cosine (RDED's preset keeps RDED's cosine_half)",
    ),
    Pin("evaluation.augment", "rrc_flip", f"{RD}:validation/main.py:119", "transforms.RandomResizedCrop("),
    Pin("evaluation.mix", "cutmix", f"{RD}:argument.py:69", 'default="cutmix"'),
    Pin("evaluation.mix_beta", 1.0, f"{RD}:argument.py:133", "default=1.0,"),
    Pin("evaluation.labels", "kd", f"{RD}:validation/main.py:215", "soft_mix_label = teacher_model(mix_images)"),
    Pin("evaluation.kd.temperature", 20.0, f"{RD}:argument.py:274", "args.temperature = 20"),
    Pin("evaluation.kd.t_squared", False, f"{RD}:validation/main.py:226", "loss = loss_function_kl("),
    Pin("evaluation.kd.alpha", 1.0, f"{RD}:validation/main.py:226", "loss_function_kl(soft_pred_mix_label"),
    Pin("evaluation.eval_every", 10, f"{RD}:validation/main.py:179", "if epoch % 10 == 9 or epoch == args.re_epochs"),
    Pin("evaluation.eval_after", 0.8, f"{RD}:validation/main.py:180", "if epoch > args.re_epochs * 0.8:"),
    Pin(
        "evaluation.accuracy",
        "best_during_training",
        f"{RD}:validation/main.py:188",
        "if top1 > best_acc1:",
        ours="final",
        why="no model selection on the test set by default; accuracy: best_during_training reproduces RDED's "
        "(with eval_every 10 and eval_after 0.8, as preset)",
    ),
    Pin(
        "seeds",
        1,
        f"{RD}:argument.py:122",
        '"--seed", default=42',
        ours=3,
        why="one run (seed 42) in RDED; evaluation.seeds here, for an interval over seeds",
    ),
    Pin(
        "patch_shuffle",
        True,
        f"{RD}:validation/main.py:117",
        "augment.append(ShufflePatches(args.factor))",
        ours=False,
        why="ShufflePatches shuffles the 2x2 patches of RDED's mosaic images; our sets are whole images",
    ),
    Pin("teacher.model", "resnet18", f"{RD}:validation/main.py:54", "model_name=args.arch_name"),
)

_TORCHVISION_RECIPE = (
    Pin("teacher_recipe.epochs", 90, f"{TV}:references/classification/train.py:242", "'--epochs', default=90"),
    Pin("teacher_recipe.optimizer", "sgd", f"{TV}:references/classification/train.py:181", "torch.optim.SGD("),
    Pin("teacher_recipe.lr", 0.1, f"{TV}:references/classification/train.py:246", "'--lr', default=0.1"),
    Pin("teacher_recipe.momentum", 0.9, f"{TV}:references/classification/train.py:247", "'--momentum', default=0.9"),
    Pin("teacher_recipe.weight_decay", 0.0001, f"{TV}:references/classification/train.py:249", "default=1e-4"),
    Pin("teacher_recipe.schedule", "step_every", f"{TV}:references/classification/train.py:189", "StepLR(optimizer"),
    Pin(
        "teacher_recipe.step_epoch", 30, f"{TV}:references/classification/train.py:252", "'--lr-step-size', default=30"
    ),
    Pin(
        "teacher_recipe.batch_size",
        256,
        f"{TV}:references/classification/train.py:241",
        "'--batch-size', default=32",
        why="32 per GPU on the 8 GPUs every reference model was trained on (the README): 256",
    ),
    Pin("teacher_recipe.augment", "rrc_flip", f"{TV}:references/classification/train.py:101", "RandomResizedCrop(224)"),
    Pin("teacher_recipe.rrc_scale", [0.08, 1.0], f"{TVW}:torchvision/transforms/transforms.py:904", "(0.08, 1.0)"),
    Pin("teacher_recipe.test_resize", 256, f"{TV}:references/classification/train.py:122", "transforms.Resize(256)"),
)

_SRE2L_CIFAR_RECIPE = (
    Pin("teacher_recipe.epochs", 200, f"{SR}:SRe2L/*small_dataset/squeeze_cifar.py:18", '"--epochs", default=200'),
    Pin("teacher_recipe.lr", 0.1, f"{SR}:SRe2L/*small_dataset/squeeze_cifar.py:15", '"--lr", default=0.1'),
    Pin("teacher_recipe.momentum", 0.9, f"{SR}:SRe2L/*small_dataset/squeeze_cifar.py:85", "momentum=0.9"),
    Pin("teacher_recipe.weight_decay", 0.0005, f"{SR}:SRe2L/*small_dataset/squeeze_cifar.py:85", "weight_decay=5e-4"),
    Pin("teacher_recipe.schedule", "cosine", f"{SR}:SRe2L/*small_dataset/squeeze_cifar.py:86", "CosineAnnealingLR("),
    Pin("teacher_recipe.batch_size", 128, f"{SR}:SRe2L/*small_dataset/squeeze_cifar.py:57", "batch_size=128"),
    Pin(
        "teacher_recipe.augment",
        "crop_flip",
        f"{SR}:SRe2L/*small_dataset/squeeze_cifar.py:42",
        "RandomCrop(32, padding=4)",
    ),
)

_RDED_IMAGENET = (
    Pin(
        "evaluation.models", ["resnet18"], f"{RD}:scripts/imagenet-1k_10ipc_resnet-18_to_resnet-18_cr5.sh:8", "resnet18"
    ),
    Pin("evaluation.lr", 0.001, f"{RD}:argument.py:288", "args.adamw_lr = 0.001"),
    Pin("evaluation.batch_size", 100, f"{RD}:argument.py:250", "args.re_batch_size *= 2"),
    Pin("evaluation.rrc_scale", [0.5, 1.0], f"{RD}:validation/main.py:121", "scale=(1 / args.factor"),
    Pin("evaluation.test_resize", 256, f"{RD}:validation/main.py:154", "transforms.Resize(args.input_size // 7 * 8"),
    Pin("teacher.recipe", "torchvision", f"{RD}:README.md:45", "we adapt official [Torchvision code]"),
    Pin("published_teacher", 0.69758, f"{TVW}:torchvision/models/resnet.py:322", '"acc@1": 69.758'),
    Pin(
        "teacher.checkpoint",
        "torchvision's IMAGENET1K_V1",
        f"{RD}:synthesize/utils.py:253",
        "thmodels.__dict__[model_name](pretrained=True)",
        ours=None,
        why="no download here: set teacher.checkpoint to torchvision's ResNet-18 state dict, else ours is trained "
        "with torchvision's recipe and its accuracy is set beside 69.76 %",
    ),
    *_TORCHVISION_RECIPE,
)

_RDED_CIFAR100 = (
    Pin(
        "evaluation.models",
        ["resnet18"],
        f"{RD}:scripts/cifar100_10ipc_resnet-18-modified_to_resnet-18-modified_cr5.sh:8",
        "resnet18_modified",
    ),
    Pin("evaluation.lr", 0.001, f"{RD}:argument.py:290", "args.adamw_lr = 0.001"),
    Pin("evaluation.batch_size", 100, f"{RD}:argument.py:248", "args.re_batch_size *= 2"),
    Pin("evaluation.rrc_scale", [1.0, 1.0], f"{RD}:validation/main.py:121", "scale=(1 / args.factor"),
    Pin("evaluation.test_resize", 32, f"{RD}:validation/main.py:154", "args.input_size // 7 * 8"),
    Pin("published_teacher", 0.7227, f"{RD}:README.md:52", "| 72.27 "),
    Pin(
        "teacher.recipe",
        "torchvision's code adapted (unpublished)",
        f"{RD}:README.md:45",
        "Following [SRe$^2$L]",
        ours="sre2l_cifar",
        why="how RDED adapted torchvision's code to CIFAR is not published (RDED issue #5); it follows SRe2L, "
        "whose CIFAR teacher recipe (squeeze_cifar.py) is sre2l_cifar",
    ),
    *_SRE2L_CIFAR_RECIPE,
)

_RDED_TINY = (
    Pin("evaluation.batch_size", 100, f"{RD}:argument.py:254", "args.re_batch_size = 100"),
    Pin(
        "evaluation.rrc_scale",
        [1.0, 1.0],
        f"{RD}:scripts/tinyimagenet_10ipc_resnet-18-modified_to_resnet-18-modified_cr5.sh:4",
        "--factor 1",
    ),
    Pin("evaluation.test_resize", 72, f"{RD}:validation/main.py:154", "args.input_size // 7 * 8"),
    Pin("published_teacher", 0.6198, f"{RD}:README.md:54", "| 61.98 "),
)

HARD_CFG = "DM/CIFAR10/IPC10.yaml"
_DD_RANKING_HARD = (
    Pin("evaluation.models", ["convnet"], f"{DDE}:{HARD_CFG}:10", "model_name: ConvNet-3"),
    Pin("evaluation.epochs", 1000, f"{DDE}:{HARD_CFG}:36", "num_epochs: 1000"),
    Pin("evaluation.optimizer", "sgd", f"{DDE}:{HARD_CFG}:30", "optimizer: sgd"),
    Pin("evaluation.lr", 0.01, f"{DDE}:{HARD_CFG}:39", "default_lr: 0.01"),
    Pin("evaluation.schedule", "step", f"{DDE}:{HARD_CFG}:31", "lr_scheduler: step"),
    Pin("evaluation.step_epoch", 500, f"{DDE}:{HARD_CFG}:32", "step_size: 500"),
    Pin("evaluation.weight_decay", 0.0005, f"{DDE}:{HARD_CFG}:33", "weight_decay: 0.0005"),
    Pin("evaluation.momentum", 0.9, f"{DDE}:{HARD_CFG}:34", "momentum: 0.9"),
    Pin("evaluation.batch_size", 256, f"{DDE}:{HARD_CFG}:37", "syn_batch_size: 256"),
    Pin("evaluation.augment", "dsa", f"{DDE}:{HARD_CFG}:14", "data_aug_func: 'dsa'"),
    Pin("evaluation.mix", "none", f"{DDR}:ddranking/metrics/hard_label.py:124", "if data_aug_func == 'dsa':"),
    Pin("evaluation.labels", "hard", f"{DDR}:ddranking/metrics/hard_label.py:243", "torch.nn.CrossEntropyLoss()"),
    Pin(
        "seeds",
        5,
        f"{DDE}:{HARD_CFG}:35",
        "num_eval: 5",
        why="the same count; DD-Ranking seeds each run from the clock (utils/misc.py set_seed), ours by "
        "evaluation.seeds",
    ),
    Pin("evaluation.eval_every", 10, f"{DDR}:ddranking/metrics/hard_label.py:119", "self.test_interval = 10"),
    Pin(
        "evaluation.accuracy",
        "best_during_training",
        f"{DDR}:ddranking/metrics/hard_label.py:285",
        "if acc1 > best_acc1:",
        ours="final",
        why="no model selection on the test set by default; accuracy: best_during_training reproduces it",
    ),
    Pin("evaluation.test_resize", None, f"{DDR}:ddranking/utils/data.py:66", "transform = transforms.Compose(["),
    Pin(
        "evaluation.lr_search.lrs",
        [0.001, 0.005, 0.01, 0.05, 0.1],
        f"{DDR}:ddranking/metrics/hard_label.py:169",
        "lr_list = [0.001, 0.005, 0.01, 0.05, 0.1]",
    ),
    Pin(
        "evaluation.lr_search.activate",
        True,
        f"{DDR}:ddranking/metrics/hard_label.py:376",
        "hyper_param_search=True",
        ours=False,
        why="DD-Ranking always searches the random subset's lr on test accuracy (and the distilled set's when no "
        "syn_lr is given); the fixed lr is the default here, lr_search: {activate: true} reproduces the search",
    ),
    Pin("evaluation.baselines.full", True, f"{DDE}:{HARD_CFG}:43", "eval_full_data: true"),
    Pin("run[full].train_augment", False, f"{DDR}:ddranking/metrics/hard_label.py:273", "if mode == 'syn' else None"),
    Pin(
        "run[full].batch_size",
        256,
        f"{DDR}:ddranking/metrics/hard_label.py:240",
        "self.real_batch_size if mode == 'real'",
    ),
    Pin(
        "run[full].epochs",
        1000,
        f"{DDR}:ddranking/metrics/hard_label.py:266",
        "for epoch in tqdm(range(self.num_epochs)):",
    ),
    Pin("run[full].schedule", "step_every", f"{DDR}:ddranking/utils/train_and_eval.py:117", "return StepLR(optimizer"),
    Pin("run[full].step_epoch", 100, f"{DDR}:ddranking/utils/train_and_eval.py:62", '"step_size": 100,'),
    Pin("run[full].lr", 0.01, f"{DDR}:ddranking/utils/train_and_eval.py:61", '"lr": 0.01,'),
    Pin("run[full].weight_decay", 0.0005, f"{DDR}:ddranking/utils/train_and_eval.py:57", '"weight_decay": 0.0005,'),
    Pin(
        "run[full].accuracy",
        "best_during_training",
        f"{DDR}:ddranking/metrics/hard_label.py:278",
        "if (epoch + 1) % self.test_interval == 0:",
        ours="final",
        why="the full-data ceiling reports its final epoch here, under every accuracy setting",
    ),
    Pin("dsa.flip", 0.5, f"{DDE}:{HARD_CFG}:16", "flip: 0.5"),
    Pin("dsa.rotate_degrees", 15.0, f"{DDE}:{HARD_CFG}:17", "rotate: 15.0"),
    Pin("dsa.saturation", 2.0, f"{DDE}:{HARD_CFG}:18", "saturation: 2.0"),
    Pin("dsa.brightness", 1.0, f"{DDE}:{HARD_CFG}:19", "brightness: 1.0"),
    Pin("dsa.contrast", 0.5, f"{DDE}:{HARD_CFG}:20", "contrast: 0.5"),
    Pin("dsa.scale", 1.2, f"{DDE}:{HARD_CFG}:21", "scale: 1.2"),
    Pin("dsa.crop", 0.125, f"{DDE}:{HARD_CFG}:22", "crop: 0.125"),
    Pin("dsa.cutout", 0.5, f"{DDE}:{HARD_CFG}:23", "cutout: 0.5"),
    Pin(
        "dsa.align_corners",
        True,
        f"{DDR}:ddranking/aug/dsa.py:43",
        "align_corners=True",
        ours=False,
        why="our DSA samples as the DSA code's default (the ECCV 2024 challenge's script), a sub-pixel difference",
    ),
)

SOFT_IN = "SRe2L/ImageNet1K/IPC10.yaml"
SOFT_C = "SRe2L/CIFAR100/IPC10.yaml"
_DD_RANKING_SOFT_COMMON = (
    Pin("evaluation.optimizer", "adamw", f"{DDE}:{SOFT_IN}:59", "optimizer: adamw"),
    Pin("evaluation.weight_decay", 0.01, f"{DDE}:{SOFT_IN}:61", "weight_decay: 0.01"),
    Pin("evaluation.schedule", "cosine_half", f"{DDE}:{SOFT_IN}:60", "lr_scheduler: cosine"),
    Pin(
        "lr_factor[cosine_half](150,300)",
        _cos_half(150, 300),
        f"{DDR}:ddranking/utils/train_and_eval.py:123",
        "0.5 * (1.0 + math.cos(math.pi * step / num_epochs / 2))",
    ),
    Pin(
        "evaluation.decay_norm_and_bias",
        True,
        f"{DDR}:ddranking/utils/train_and_eval.py:110",
        "AdamW(model.parameters()",
    ),
    Pin("evaluation.labels", ["kd", "hard"], f"{DDE}:{SOFT_IN}:52", "soft_label_mode: M"),
    Pin("evaluation.kd.t_squared", False, f"{DDE}:{SOFT_IN}:56", "scale_loss: false"),
    Pin("evaluation.mix_hard_labels", False, f"{DDE}:{SOFT_IN}:49", "use_aug_for_hard: false"),
    Pin(
        "run[distilled.hard].mix",
        "none",
        f"{DDR}:ddranking/metrics/soft_label.py:312",
        "if self.use_aug_for_hard else None",
    ),
    Pin("seeds", 5, f"{DDE}:{SOFT_IN}:63", "num_eval: 5", why="the same count; DD-Ranking seeds from the clock"),
    Pin("evaluation.eval_every", 20, f"{DDR}:ddranking/metrics/soft_label.py:130", "self.test_interval = 20"),
    Pin(
        "evaluation.accuracy",
        "best_during_training",
        f"{DDR}:ddranking/metrics/soft_label.py:381",
        "if acc1 > best_acc1:",
        ours="final",
        why="no model selection on the test set by default; accuracy: best_during_training reproduces it",
    ),
    Pin(
        "evaluation.lr_search.lrs",
        [0.001, 0.005, 0.01, 0.05, 0.1],
        f"{DDR}:ddranking/metrics/soft_label.py:240",
        "lr_list = [0.001, 0.005, 0.01, 0.05, 0.1]",
    ),
    Pin(
        "evaluation.lr_search.activate",
        True,
        f"{DDR}:ddranking/metrics/soft_label.py:522",
        "hyper_param_search=True",
        ours=False,
        why="DD-Ranking searches the hard-label runs' and the random subset's lr on test accuracy (the distilled "
        "soft run's when no syn_lr is given); the fixed lr is the default here, lr_search reproduces the search",
    ),
    Pin(
        "evaluation.lr",
        0.001,
        f"{DDR}:demo_aug.py:12",
        "syn_lr=0.001",
        why="the configs give no lr (it is searched or passed as syn_lr); 0.001 is the syn_lr its demos pass",
    ),
    Pin("teacher.model", "resnet18", f"{DDE}:{SOFT_IN}:14", "teacher_model_names: [ResNet-18-BN]"),
)

_DD_RANKING_SOFT_IMAGENET = (
    Pin("evaluation.models", ["resnet18"], f"{DDE}:{SOFT_IN}:10", "model_name: ResNet-18-BN"),
    Pin("evaluation.epochs", 300, f"{DDE}:{SOFT_IN}:64", "num_epochs: 300"),
    Pin("evaluation.batch_size", 1024, f"{DDE}:{SOFT_IN}:68", "syn_batch_size: 1024"),
    Pin("evaluation.augment", "rrc_flip", f"{DDE}:{SOFT_IN}:23", "- name: RandomResizedCrop"),
    Pin("evaluation.rrc_scale", [0.08, 1.0], f"{DDE}:{SOFT_IN}:26", "scale: [0.08, 1.0]"),
    Pin("evaluation.mix", "cutmix", f"{DDE}:{SOFT_IN}:17", "data_aug_func: cutmix"),
    Pin("evaluation.mix_beta", 1.0, f"{DDE}:{SOFT_IN}:19", "beta: 1.0"),
    Pin("evaluation.kd.temperature", 20.0, f"{DDE}:{SOFT_IN}:55", "temperature: 20.0"),
    Pin("evaluation.test_resize", 256, f"{DDE}:{SOFT_IN}:39", "size: 256"),
    Pin(
        "run[distilled.hard].test_resize",
        "Resize((224, 224)): squashed",
        f"{DDR}:ddranking/metrics/soft_label.py:321",
        "loader=self.test_loader_real,",
        ours=256,
        why="DD-Ranking tests its hard-label runs on the 'real' test loader (utils/data.py: Resize(im_size) with "
        "im_size [224, 224], aspect ratio not kept); ours test every run alike, at test_resize",
    ),
    Pin("evaluation.baselines.full", False, f"{DDE}:{SOFT_IN}:70", "eval_full_data: false"),
    Pin(
        "evaluation.baselines.full_accuracy",
        0.565,
        f"{DDR}:ddranking/utils/train_and_eval.py:16",
        '"ImageNet1K-ResNet-18-BN": 56.5',
    ),
    Pin("teacher.recipe", "torchvision", f"{DDR}:ddranking/utils/train_and_eval.py:26", '"num_epochs": 90,'),
    *_TORCHVISION_RECIPE,
)

_DD_RANKING_SOFT_CIFAR100 = (
    Pin("evaluation.models", ["resnet18"], f"{DDE}:{SOFT_C}:10", "model_name: ResNet-18-BN"),
    Pin("evaluation.epochs", 400, f"{DDE}:{SOFT_C}:52", "num_epochs: 400"),
    Pin("evaluation.batch_size", 256, f"{DDE}:{SOFT_C}:56", "syn_batch_size: 256"),
    Pin("evaluation.augment", "crop_flip", f"{DDE}:{SOFT_C}:23", "- name: RandomCrop"),
    Pin("evaluation.mix", "mixup", f"{DDE}:{SOFT_C}:17", "data_aug_func: mixup"),
    Pin("evaluation.mix_beta", 0.8, f"{DDE}:{SOFT_C}:19", "lambda: 0.8"),
    Pin("evaluation.kd.temperature", 30.0, f"{DDE}:{SOFT_C}:43", "temperature: 30.0"),
    Pin("evaluation.test_resize", None, f"{DDE}:{SOFT_C}:36", "custom_val_trans: null"),
    Pin("evaluation.baselines.full", True, f"{DDE}:{SOFT_C}:58", "eval_full_data: true"),
    Pin(
        "run[full].optimizer",
        "KeyError: no 'CIFAR100-ResNet-18-BN' in REAL_DATA_TRAINING_CONFIG",
        f"{DDR}:ddranking/metrics/soft_label.py:286",
        'REAL_DATA_TRAINING_CONFIG[f"{self.dataset}-{self.model_name}"]',
        ours="adamw",
        why="the source's full-data run cannot run at b8b0966; ours trains it with the preset's recipe, hard "
        "labels, no mixing",
    ),
    Pin(
        "teacher.recipe",
        "a pretrained checkpoint (teacher_dir; its recipe unpublished)",
        f"{DDE}:{SOFT_C}:13",
        "teacher_dir: ./teacher_models",
        ours="sre2l_cifar",
        why="without teacher.checkpoint, SRe2L's CIFAR teacher recipe (squeeze_cifar.py)",
    ),
)

# name -> ((context, pins), ...)
PINS: dict[str, tuple[tuple[Context, tuple[Pin, ...]], ...]] = {
    "eccv2024_challenge": ((CIFAR100, _CHALLENGE), (TINY, _CHALLENGE)),
    "rded": (
        (IMAGENET, _RDED_COMMON + _RDED_IMAGENET),
        (CIFAR100, _RDED_COMMON + _RDED_CIFAR100),
        (TINY, _RDED_TINY),
    ),
    "dd_ranking_hard": ((CIFAR10, _DD_RANKING_HARD),),
    "dd_ranking_soft": (
        (IMAGENET, _DD_RANKING_SOFT_COMMON + _DD_RANKING_SOFT_IMAGENET),
        (CIFAR100, _DD_RANKING_SOFT_COMMON + _DD_RANKING_SOFT_CIFAR100),
    ),
}

# Recipe keys a run's recipe leaves out at their defaults: what the training loop then does
_RECIPE_DEFAULTS = {"augment": "crop_flip", "mix": "none", "accuracy": "final", "test_resize": None}


def resolved(name: str, ctx: Context) -> dict:
    """The configuration protocol `name` resolves to in `ctx`, from a config that names only the protocol and
    the dataset (the schema's defaults under the preset)."""
    from ..config import validate_schema

    raw = {"dataset": {"name": ctx.dataset}, "evaluation": {"protocol": name}}
    cfg, _ = apply_protocol(validate_schema(raw), raw, ctx)
    return cfg


def value_of(setting: str, cfg: dict, ctx: Context):
    """Our value of `setting` (see the module's docstring) in the resolved `cfg`."""
    from .runs import eval_runs, recipe, teacher_recipe

    head, _, rest = setting.partition(".")
    if m := re.fullmatch(r"run\[([\w.]+)\]\.(\w+)", setting):
        run = next(r for r in eval_runs(cfg, has_real_data=True) if r.key == m.group(1))
        r = recipe(cfg, run)
        return r.get(m.group(2), _RECIPE_DEFAULTS.get(m.group(2)))
    if m := re.fullmatch(r"lr_factor\[(\w+)\]\((\d+),(\d+)(?:,(\d+))?\)", setting):
        from .train import lr_at

        step = int(m.group(4)) if m.group(4) else None
        return float(lr_at(int(m.group(2)), int(m.group(3)), 1.0, m.group(1), step))
    if head in ("evaluation", "teacher"):
        value = cfg[head]
        for key in rest.split("."):
            value = value[key]
        return value
    if head == "teacher_recipe":
        return teacher_recipe(cfg, ctx.resolution).get(rest, _RECIPE_DEFAULTS.get(rest))
    if setting == "seeds":
        return len(cfg["evaluation"]["seeds"])
    if setting == "published_teacher":
        from .protocols import PUBLISHED_TEACHERS

        return PUBLISHED_TEACHERS[(ctx.dataset, cfg["teacher"]["model"], ctx.resolution)][0]
    if head == "dsa":
        from . import augment

        return augment.DSA_ALIGN_CORNERS if rest == "align_corners" else augment.DSA[rest]
    if head == "export":
        from ..distilled import export

        return export.constant(rest)
    if setting == "patch_shuffle":
        return False  # our sets are whole images: nothing to shuffle
    raise KeyError(f"unknown setting {setting!r}")


def _same(a, b) -> bool:
    """Equal values: booleans only to booleans, numbers to within rounding, sequences item by item."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def drift(name: str) -> list[str]:
    """Every entry of protocol `name`'s tables that the preset does not equal, with the line to read."""
    out = []
    for ctx, pins in PINS[name]:
        cfg = resolved(name, ctx)
        for p in pins:
            ours = value_of(p.setting, cfg, ctx)
            if not _same(ours, p.expected):
                src = f"the source's {p.source!r}" + (f", ours by design {p.ours!r} ({p.why})" if p.why else "")
                out.append(
                    f"{name} on {ctx.dataset} at {ctx.resolution} px: {p.setting} is {ours!r}; expected {src}. "
                    f"Read {p.where}: {p.quote!r}"
                )
    return out


def format_table(name: str, ctx: Context | None = None) -> str:
    """Protocol `name`'s tables as Markdown: one per context (only `ctx`'s dataset's when it has one)."""
    groups = [g for g in PINS[name] if ctx is None or g[0].dataset == ctx.dataset] or list(PINS[name])
    lines = []
    for c, pins in groups:
        cfg = resolved(name, c)
        lines += [
            f"{name}: {c.dataset}, {c.resolution} px, IPC {c.ipc}, {c.n_classes} classes",
            "",
            "| setting | source | ours | source line | why ours differs, or a note |",
            "|---|---|---|---|---|",
        ]
        for p in pins:
            ours = value_of(p.setting, cfg, c)
            lines.append(f"| {p.setting} | {p.source!r} | {ours!r} | {p.where}: `{p.quote}` | {p.why} |")
        lines.append("")
    return "\n".join(lines)


def _split(where: str) -> tuple[str, str, str, int]:
    """ "owner/name@commit:path:line" (or "package==version:path:line") -> (repo, commit, path, line)."""
    source, path, line = where.rsplit(":", 2)
    repo, _, commit = source.partition("@")
    return repo, commit, path, int(line)


def verify_quotes(mirrors: Path) -> list[str]:
    """Check each entry's quote against its line in clones of the sources: `mirrors/<owner>+<name>/repo` (bare or
    not) read with `git show <commit>:<path>`, and the installed torchvision for `torchvision==...` entries.
    Returns the mismatches; entries whose source is not there are listed as unchecked."""
    out, seen = [], set()
    for name, groups in PINS.items():
        for _, pins in groups:
            for p in pins:
                if (p.where, p.quote) in seen:
                    continue
                seen.add((p.where, p.quote))
                repo, commit, path, line = _split(p.where)
                text = _source_text(mirrors, repo, commit, path)
                if text is None:
                    out.append(f"unchecked (no copy of {repo}@{commit}:{path}): {p.where}")
                    continue
                lines = text.splitlines()
                if line > len(lines) or p.quote not in lines[line - 1]:
                    got = lines[line - 1].strip() if line <= len(lines) else "(no such line)"
                    out.append(f"{name}: {p.where} reads {got!r}, not {p.quote!r}")
    return out


def _source_text(mirrors: Path, repo: str, commit: str, path: str) -> str | None:
    if repo.startswith("torchvision=="):
        import torchvision

        if torchvision.__version__.split("+")[0] != repo.split("==")[1]:
            return None
        return (Path(torchvision.__file__).parent.parent / path).read_text()
    git_dir = Path(mirrors) / repo.replace("/", "+") / "repo"
    if not git_dir.exists():
        return None
    r = subprocess.run(["git", "-C", str(git_dir), "show", f"{commit}:{path}"], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m gendistill.evaluation.protocol_sources", description=__doc__.split("\n")[0]
    )
    ap.add_argument("name", choices=list(PINS), help="a protocol")
    ap.add_argument("--dataset", help="only the table of this dataset (default: every table of the protocol)")
    a = ap.parse_args(argv)
    print(format_table(a.name, Context(a.dataset, 0, 0, 0) if a.dataset else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
