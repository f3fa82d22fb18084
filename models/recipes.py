"""The five zoo recipes: what each seed guide did, as data. No torch here.

Values are copied from the guides in ``shared/seeds/`` (ATC/AOE commands, perf tables,
accuracy lines). ``{batch}`` in ``input_shape`` / ``shapes`` templates stands for the batch
being compiled or measured. Where a guide's table and its text disagree, the table wins and
``Published.source`` says so.
"""

from __future__ import annotations

from surgery.recipe import EvalMode, EvalSpec, InputSpec, ModelVariant, PassStep, Preprocessing, Published, Recipe

# ---------------------------------------------------------------------------
# evaluation: each guide's preprocessing and metric, and the upstream project's where it differs
# (shared/reference/models.md gives the scripts these come from)

_TORCH_RGB = Preprocessing(note="PIL convert('RGB'), ToTensor, Normalize(ImageNet mean/std)")
ICNET_EVAL = EvalSpec(
    task="segmentation", dataset="cityscapes", num_classes=19, labels="labelIds", output="logits",
    guide=EvalMode(_TORCH_RGB, "icnet_segmentation",
                   "pre_dataset.py: full 1024x2048, no resize; evaluate.py: ICNet's SegmentationMetric"),
    upstream=EvalMode(Preprocessing(resize="short", size=(1024,), note="evaluate.py: shorter side to base_size "
                                    "1024 (PIL bilinear; labels nearest): a no-op on Cityscapes"),
                      "icnet_segmentation", "liminn/ICNet-pytorch evaluate.py, utils/metric.py"),
    published={"mIoU": "mIoU_average", "pixAcc": "pixAcc_average"}, info_size=(1024, 2048))
UNETPP_EVAL = EvalSpec(
    task="binary_segmentation", dataset="dsb2018", num_classes=1, output="output1",
    guide=EvalMode(Preprocessing(read="bgr", resize="squash", size=(96, 96), interpolation="cv2_linear",
                                 normalize="albumentations", divide=255.0,
                                 note="cv2.imread (BGR), albumentations Resize(96,96) + Normalize() with the "
                                      "RGB mean/std applied to BGR channels, then /255 again"),
                   "iou_raw_logits", "nested_unet_postprocess.py: per image, raw logits > 0.5 (no sigmoid)"),
    upstream=EvalMode(Preprocessing(read="bgr", resize="squash", size=(96, 96), interpolation="cv2_linear",
                                    normalize="albumentations", divide=255.0, note="val.py: as the guide"),
                      "iou_sigmoid_batch", "val.py iou_score: sigmoid > 0.5, per batch of 16, weighted mean"),
    published={"IoU": "IoU"}, info_size=(96, 96), batch=16)
_SHORT256 = Preprocessing(resize="short", size=(256,), crop=224,
                          note="Resize(256) (shorter side, PIL bilinear), CenterCrop(224), ToTensor, Normalize")
CSPRESNEXT50_EVAL = EvalSpec(
    task="classification", dataset="imagenet", num_classes=1000, output="class",
    guide=EvalMode(Preprocessing(resize="squash", size=(256, 256), crop=224,
                                 note="cspresnext_torch_preprocess.py: resize(img, (256, 256)) squashes to 256x256 "
                                      "(its comment says Resize(256)), CenterCrop(224), ImageNet mean/std"),
                   "topk", "imagenet_acc_eval.py: top-1..5 against val_label.txt"),
    upstream=EvalMode(_SHORT256, "topk", "timm default_cfg: crop_pct 0.875, bilinear"),
    published={"top1": "top1", "top5": "top5"}, published_scale=100.0, info_size=(224, 224))
DEEPLABV3_EVAL = EvalSpec(
    task="segmentation", dataset="cityscapes", num_classes=19, labels="labelTrainIds", output="output",
    guide=EvalMode(Preprocessing(normalize="mmcv", note="deeplabv3_torch_preprocess.py: cv2 BGR->RGB, "
                                 "(x - [123.675,116.28,103.53]) / [58.395,57.12,57.375], full 1024x2048"),
                   "mmseg_segmentation", "deeplabv3_torch_postprocess.py: mmseg mean_iou over labelTrainIds"),
    upstream=EvalMode(Preprocessing(resize="keep_ratio", size=(2048, 1024), interpolation="cv2_linear",
                                    normalize="mmcv", note="mmseg test pipeline: Resize((2048,1024), keep_ratio) "
                                    "(a no-op on Cityscapes), Normalize(to_rgb=True)"),
                      "mmseg_segmentation", "mmseg mean_iou: nanmean IoU, aAcc"),
    published={"mIoU": "mIoU"}, published_scale=100.0, info_size=(1024, 2048))
HRNET_W18_EVAL = EvalSpec(
    task="classification", dataset="imagenet", num_classes=1000, output="class",
    guide=EvalMode(_SHORT256, "topk", "imagenet_torch_preprocess.py hrnet; imagenet_acc_eval.py"),
    upstream=EvalMode(_SHORT256, "topk", "tools/valid.py; lib/core/evaluate.py accuracy"),
    published={"top1": "top1", "top5": "top5"}, published_scale=100.0, info_size=(224, 224))

ICNET = Recipe(
    name="icnet",
    summary="ICNet semantic segmentation (ResNet50-v1s, Cityscapes 19 classes), 4 outputs",
    upstream="liminn/ICNet-pytorch@da394fc44f4fbaff1b47ab83ce7121a96f375b03",
    module="surgery.models.icnet",
    inputs=(InputSpec("actual_input_1", ("N", 3, 1024, 2048)),),
    # upstream leaves the outputs unnamed; the suffix is the output stride (full resolution first)
    outputs=("logits", "logits_4", "logits_8", "logits_16"),
    params=26_249_376,
    variants=(ModelVariant("ppm", ("exact", "ascend"), "exact",
                      "pyramid pooling: exact adaptive avg pooling, or the Ascend icnet.diff fixed-kernel "
                      "avg_pool2d approximation (inexact for bins 3 and 6)"),),
    # the graph-level form of the guide's `atc --out_nodes="Resize_317:0"`: keep the full-resolution logits
    default_passes=(PassStep("prune_outputs", {"outputs": "logits"}),),
    atc={"framework": 5, "input_format": "NCHW", "input_shape": "actual_input_1:{batch},3,1024,2048",
         "out_nodes": "logits", "log": "debug", "soc_version": "Ascend310P3",
         "note": "guide: --out_nodes=\"Resize_317:0\", the torch 1.8 name of the Resize producing output 0"},
    aoe={"framework": 5, "job_type": 2, "input_shape": "actual_input_1:{batch},3,1024,2048", "log": "error",
         "op_select_implmode": "high_performance", "auto_tune_mode": "RL,GA",
         "note": "guide 6.2: aoe --job_type 2 (operator tuning); 6.2.3: atc --auto_tune_mode=RL,GA on Ascend310"},
    # guide 6.1.2 typed --shapes=image:1,3,1024,2048; the input is actual_input_1
    trtexec={"fp16": True, "threads": True, "shapes": "actual_input_1:{batch}x3x1024x2048"},
    batches=(1, 4, 8, 16),
    guide_variants={"ppm": "ascend"},  # icnet.diff: the guide compiled the fixed-kernel pyramid pooling
    dataset="cityscapes_val",
    preprocessing="rgb_imagenet_norm_1024x2048",
    metric="miou_pixacc_icnet",
    published=Published(
        accuracy={"mIoU": {"310": 0.686, "310P": 0.689}, "pixAcc": {"310": 0.940, "310P": 0.950}},
        throughput={
            "310": {1: 11.7012, 4: 13.27, 8: 13.3353},
            "310P": {1: 20.6958, 4: 34.784, 8: 33.6264, 16: 33.8411},
            "310P+AOE": {1: 20.9682, 4: 34.1967, 8: 35.3837, 16: 39.9992},
            "310P+auto_tune": {1: 21.5788, 4: 34.7779, 8: 37.6133, 16: 40.4716},
            "T4": {1: 72.0372, 4: 289.6913, 8: 579.9454, 16: 1177.7175},
        },
        source="icnet.md 6.3 first table (310 bs16 not run: out of memory); the second table's 310P column "
               "mixes in AOE figures; mIoU/pixAcc are ICNet's 'Average' (mean of running values)",
    ),
    guide="icnet.md",
    evaluation=ICNET_EVAL,
)

UNETPP = Recipe(
    name="unetpp",
    summary="UNet++ (NestedUNet) nuclei segmentation, DSB2018 96x96, 1-channel logits",
    upstream="4uiiurz1/pytorch-nested-unet@557ea02f0b5d45ec171aae2282d2cd21562a633e",
    module="surgery.models.unetpp",
    inputs=(InputSpec("actual_input_1", ("N", 3, 96, 96)),),
    outputs=("output1",),
    params=9_163_329,
    variants=(ModelVariant("upsample", ("bilinear", "nearest"), "bilinear",
                      "upsampling in the network: bilinear align_corners=True (upstream) or nearest "
                      "(the Ascend nested_unet.diff)"),),
    # the Ascend patch (nn.Upsample mode='nearest') done on the graph: torch exports nearest as asymmetric+floor
    default_passes=(PassStep("resize_nearest", {"preset": "torch"}),),
    atc={"framework": 5, "input_format": "NCHW", "input_shape": "actual_input_1:{batch},3,96,96", "log": "debug",
         "soc_version": "Ascend310P3"},
    # the guide gives no T4 command (TensorRT 7.2.3.4); this is the ModelZoo's usual trtexec --fp16 run
    trtexec={"fp16": True, "shapes": "actual_input_1:{batch}x3x96x96"},
    batches=(1, 4, 8, 16, 32),
    dataset="dsb2018_96_val_ids",
    preprocessing="dsb2018_bgr_imagenet_norm_div255",
    metric="iou_logits_gt_0.5",
    published=Published(
        accuracy={"IoU": {"Ascend": 0.8385, "upstream": 0.842}},
        throughput={
            "310": {1: 1674.950432, 4: 1868.409806, 8: 1845.83697, 16: 1757.895362, 32: 1724.390615},
            "310P": {1: 1681.600281, 4: 2495.595994, 8: 1907.807965, 16: 1852.471243, 32: 1796.602154},
            "T4": {1: 320.5865223, 4: 400.8416683, 8: 458.3922516, 16: 549.9608379, 32: 568.2170006},
        },
        per_card={"310": 4},  # the guide's "310单卡" figures: 4 devices per card
        source="unetpp.md 7.3 table (310P3 column; the guide says its 310P figures are after AOE); "
               "IoU 6.1 on om bs1/bs16, 6.2 upstream README",
    ),
    guide="unetpp.md",
    evaluation=UNETPP_EVAL,
)

CSPRESNEXT50 = Recipe(
    name="cspresnext50",
    summary="CSPResNeXt50 ImageNet classifier (timm cspresnext50_ra_224)",
    upstream="rwightman/pytorch-image-models@d584e7f617a4d0f1a0b4838227bd1f8852dfa236",
    module="surgery.models.cspresnext50",
    inputs=(InputSpec("image", ("N", 3, 224, 224)),),
    outputs=("class",),
    params=20_569_896,
    atc={"framework": 5, "input_format": "NCHW", "input_shape": "image:{batch},3,224,224", "log": "debug",
         "soc_version": "Ascend310"},
    batches=(1, 4, 8, 16, 32),
    dataset="imagenet_val",
    preprocessing="squash256_centercrop224_imagenet_norm",
    metric="top1_top5",
    published=Published(
        accuracy={"top1": {"310": 80.06, "paper": 77.9}, "top5": {"310": 94.94, "paper": 94.0}},
        throughput={"310": {1: 1216.352, 4: 1762.424, 8: 1856.28, 16: 1686.876, 32: 1479.88}},
        per_card={"310": 4},  # the guide's "310单卡" figures: 4 devices per card
        source="cspresnext50.md 7.1: per-device rate x4 per card (bs1 304.088x4, bs16 421.719x4 from the "
               "dataset run; bs4/8/32 pure inference, after the TransData patches); no T4 column",
    ),
    guide="cspresnext50.md",
    evaluation=CSPRESNEXT50_EVAL,
)

DEEPLABV3 = Recipe(
    name="deeplabv3",
    summary="DeepLabV3 r50-d8 semantic segmentation (mmseg, Cityscapes 19 classes)",
    upstream="open-mmlab/mmsegmentation@fa1554f1aaea9a2c58249b06e1ea48420091464d",
    module="surgery.models.deeplabv3",
    inputs=(InputSpec("input", ("N", 3, 1024, 2048)),),
    outputs=("output",),
    params=68_113_030,
    dynamic_batch=False,  # mmseg's pytorch2onnx exports batch 1 ("此模型不支持多batch")
    variants=(ModelVariant("head", ("logits", "argmax"), "logits",
                      "output: 19-class logits N×19×H×W, or mmseg's export tail (softmax, argmax int64, "
                      "unsqueeze(0) → 1×N×H×W)"),),
    # the guide runs onnxsim on the export
    default_passes=(PassStep("simplify"),),
    atc={"framework": 5, "input_format": "NCHW", "input_shape": "input:{batch},3,1024,2048", "log": "debug",
         "soc_version": "Ascend310P3"},
    # the guide gives no T4 command; this is the ModelZoo's usual trtexec --fp16 run
    trtexec={"fp16": True, "shapes": "input:{batch}x3x1024x2048"},
    batches=(1,),
    guide_variants={"head": "argmax"},  # the guide compiled mmseg's export tail (argmax), batch 1 only
    dataset="cityscapes_val",
    preprocessing="mmseg_rgb_imagenet_norm_1024x2048",
    metric="miou_mmseg",
    published=Published(
        accuracy={"mIoU": {"310": 79.06, "310P": 79.12}},
        throughput={"310": {1: 2.789}, "310P": {1: 5.3444}, "T4": {1: 5.804}},
        source="deeplabv3.md perf and accuracy tables (bs1 only)",
    ),
    guide="deeplabv3.md",
    evaluation=DEEPLABV3_EVAL,
)

HRNET_W18 = Recipe(
    name="hrnet_w18",
    summary="HRNet-W18-C ImageNet classifier (HRNet-Image-Classification cls_hrnet w18)",
    # the guide's commit is not in upstream history; cls_hrnet.py is identical on master f760c98
    upstream="HRNet/HRNet-Image-Classification@f130a24bf09b7f23ebd0075271f76c4a188093b2",
    module="surgery.models.hrnet_w18",
    inputs=(InputSpec("image", ("N", 3, 224, 224)),),
    outputs=("class",),
    params=21_299_004,
    atc={"framework": 5, "input_format": "NCHW", "input_shape": "image:{batch},3,224,224", "log": "debug",
         "soc_version": "Ascend310"},
    batches=(1, 4, 8, 16, 32),
    dataset="imagenet_val",
    preprocessing="resize256_centercrop224_imagenet_norm",
    metric="top1_top5",
    published=Published(
        accuracy={"top1": {"310": 76.46, "upstream": 76.8}, "top5": {"310": 93.14, "upstream": 93.4}},
        throughput={"310": {1: 623.9, 4: 898.432, 8: 994.056, 16: 1078.048, 32: 1086.248}},
        per_card={"310": 4},  # the guide's "310单卡" figures: 4 devices per card
        source="hrnet_w18.md 7.1: pure-inference rate x4 per card (the dataset run gave bs1 156.216x4); "
               "no T4 column",
    ),
    guide="hrnet_w18.md",
    evaluation=HRNET_W18_EVAL,
)

ALL: tuple[Recipe, ...] = (ICNET, UNETPP, CSPRESNEXT50, DEEPLABV3, HRNET_W18)
