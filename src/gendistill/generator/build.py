"""Build diffusion pipelines with random weights, offline.

Two uses:
* `build_tiny_pipeline`: a few-MB pipeline of the same component classes as a real checkpoint of one family
  (`spec["family"]`: sdxl = SDXL-Turbo's two CLIP text encoders, "text_time" UNet, KL VAE, Euler-ancestral;
  sd = SD 1.x/2.x / sd-turbo; sd3; flux; pixart = PixArt-Sigma; sana; sana_sprint; dit = class-conditional
  DiT) for the demo and the tests, tokenizers included. Seeded, so the same spec gives the same weights byte
  for byte. `save_tiny_pipeline` also writes a tiny random `AutoencoderTiny` matching the pipeline's latents
  into `tiny_decoder/` (for `generation.decoder: tiny`).
* `build_full_random_pipeline`: the full-size SDXL-Turbo architecture from the real component configs with
  random weights, for speed and memory measurements.
Random weights make noise images: fine for plumbing and timing, useless as data.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..families import family_named
from ..families.tiny import tiny_scale, tiny_spec
from .tokenizer_files import write_gemma_tokenizer, write_t5_tokenizer, write_tokenizer_files


def _text_encoder_configs(hidden: int, layers: int, vocab_size: int):
    from transformers import CLIPTextConfig

    common = dict(
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_attention_heads=2,
        num_hidden_layers=layers,
        max_position_embeddings=77,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
    )
    return CLIPTextConfig(**common), CLIPTextConfig(**common, projection_dim=hidden)


def build_tiny_pipeline(spec: dict | None = None):
    """Return a tiny random-weight pipeline of `spec["family"]` (see families.tiny.TINY_DEFAULTS; default SDXL)."""
    s = tiny_spec(spec)
    family_named(s["family"])  # an unknown family is refused, naming the known ones
    pipe = _BUILDERS[s["family"]](s) if s["family"] != "sdxl" else _build_sdxl(s)
    for module in pipe.components.values():  # inference mode, as from_pretrained leaves them (T5 has dropout)
        if hasattr(module, "eval"):
            module.eval()
    return pipe


def _build_sdxl(s: dict):
    import tempfile

    import torch
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        vocab_size = write_tokenizer_files(Path(tmp))
        tokenizer = CLIPTokenizer.from_pretrained(tmp)
        tokenizer_2 = CLIPTokenizer.from_pretrained(tmp)
    cfg1, cfg2 = _text_encoder_configs(s["text_hidden"], s["text_layers"], vocab_size)
    uc, vc = list(s["unet_channels"]), list(s["vae_channels"])
    time_dim = 8
    torch.manual_seed(s["seed"])
    unet = UNet2DConditionModel(
        sample_size=s["sample_size"] // 2 ** (len(vc) - 1),
        in_channels=4,
        out_channels=4,
        block_out_channels=uc,
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=["DownBlock2D"] + ["CrossAttnDownBlock2D"] * (len(uc) - 1),
        up_block_types=["CrossAttnUpBlock2D"] * (len(uc) - 1) + ["UpBlock2D"],
        attention_head_dim=[2] * len(uc),
        use_linear_projection=True,
        cross_attention_dim=cfg1.hidden_size + cfg2.hidden_size,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=time_dim * 6 + cfg2.projection_dim,
        transformer_layers_per_block=1,
    )
    torch.manual_seed(s["seed"] + 1)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=vc,
        down_block_types=["DownEncoderBlock2D"] * len(vc),
        up_block_types=["UpDecoderBlock2D"] * len(vc),
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=s["sample_size"],
        scaling_factor=0.13025,
    )
    torch.manual_seed(s["seed"] + 2)
    text_encoder = CLIPTextModel(cfg1)
    torch.manual_seed(s["seed"] + 3)
    text_encoder_2 = CLIPTextModelWithProjection(cfg2)
    scheduler = EulerAncestralDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        timestep_spacing="trailing",
        prediction_type="epsilon",
    )
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
    )


def _tokenizer(write, cls_name: str):
    """(tokenizer, vocabulary size): one of the project's offline tokenizers, loaded by its transformers class."""
    import tempfile

    import transformers

    with tempfile.TemporaryDirectory() as tmp:
        vocab_size = write(Path(tmp))
        return getattr(transformers, cls_name).from_pretrained(tmp), vocab_size


def _kl_vae(s: dict, latent_channels: int, scaling_factor: float, shift_factor: float | None = None):
    """A KL autoencoder (AutoencoderKL) with the spec's block widths; SD3/FLUX's (shift_factor set) have no
    quant convs, as the real ones."""
    from diffusers import AutoencoderKL

    vc = list(s["vae_channels"])
    extra = (
        {}
        if shift_factor is None
        else {"shift_factor": shift_factor, "use_quant_conv": False, "use_post_quant_conv": False}
    )
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=latent_channels,
        block_out_channels=vc,
        down_block_types=["DownEncoderBlock2D"] * len(vc),
        up_block_types=["UpDecoderBlock2D"] * len(vc),
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=s["sample_size"],
        scaling_factor=scaling_factor,
        **extra,
    )


def _t5_encoder(d_model: int, layers: int, vocab_size: int):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            vocab_size=vocab_size,
            d_model=d_model,
            d_kv=d_model // 2,
            d_ff=2 * d_model,
            num_layers=layers,
            num_heads=2,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=32,
            feed_forward_proj="gated-gelu",
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )


def _latent(s: dict) -> int:
    return s["sample_size"] // tiny_scale(s)


def _build_sd(s: dict):
    """SD 1.x/2.x (sd-turbo): one CLIP text encoder, a UNet with cross-attention, a KL VAE, Euler (trailing)."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    tokenizer, vocab_size = _tokenizer(write_tokenizer_files, "CLIPTokenizer")
    cfg, _ = _text_encoder_configs(s["text_hidden"], s["text_layers"], vocab_size)
    uc = list(s["unet_channels"])
    torch.manual_seed(s["seed"])
    unet = UNet2DConditionModel(
        sample_size=_latent(s),
        in_channels=4,
        out_channels=4,
        block_out_channels=uc,
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=["CrossAttnDownBlock2D"] * (len(uc) - 1) + ["DownBlock2D"],
        up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * (len(uc) - 1),
        attention_head_dim=[2] * len(uc),
        use_linear_projection=True,
        cross_attention_dim=cfg.hidden_size,
    )
    torch.manual_seed(s["seed"] + 1)
    vae = _kl_vae(s, 4, 0.18215)
    torch.manual_seed(s["seed"] + 2)
    text_encoder = CLIPTextModel(cfg)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        timestep_spacing="trailing",
        prediction_type="epsilon",
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )


def _build_sd3(s: dict):
    """SD3 / SD3.5: two CLIP encoders with projection and a T5 encoder, an MMDiT, a 16-channel VAE, flow Euler."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    tokenizer, vocab_size = _tokenizer(write_tokenizer_files, "CLIPTokenizer")
    tokenizer_2, _ = _tokenizer(write_tokenizer_files, "CLIPTokenizer")
    tokenizer_3, t5_vocab = _tokenizer(write_t5_tokenizer, "T5Tokenizer")
    _, cfg = _text_encoder_configs(s["text_hidden"], s["text_layers"], vocab_size)
    joint = 2 * s["text_hidden"]  # T5 width >= the two CLIP widths together (SD3 pads the CLIP states to it)
    heads, head_dim = s["transformer_heads"], s["transformer_head_dim"]
    torch.manual_seed(s["seed"])
    transformer = SD3Transformer2DModel(
        sample_size=_latent(s),
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=s["transformer_layers"],
        attention_head_dim=head_dim,
        num_attention_heads=heads,
        joint_attention_dim=joint,
        caption_projection_dim=heads * head_dim,
        pooled_projection_dim=2 * cfg.projection_dim,
        pos_embed_max_size=4 * _latent(s),
        qk_norm="rms_norm",
    )
    torch.manual_seed(s["seed"] + 1)
    vae = _kl_vae(s, 16, 1.5305, 0.0609)
    torch.manual_seed(s["seed"] + 2)
    text_encoder = CLIPTextModelWithProjection(cfg)
    torch.manual_seed(s["seed"] + 3)
    text_encoder_2 = CLIPTextModelWithProjection(cfg)
    torch.manual_seed(s["seed"] + 4)
    text_encoder_3 = _t5_encoder(joint, s["text_layers"], t5_vocab)
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        text_encoder_3=text_encoder_3,
        tokenizer_3=tokenizer_3,
    )


def _build_flux(s: dict):
    """FLUX.1-schnell: a CLIP text encoder (pooled) and a T5 encoder, the FLUX transformer (double and single
    stream blocks, no guidance embedding), a 16-channel VAE, flow Euler without dynamic shifting."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    tokenizer, vocab_size = _tokenizer(write_tokenizer_files, "CLIPTokenizer")
    tokenizer_2, t5_vocab = _tokenizer(write_t5_tokenizer, "T5Tokenizer")
    cfg, _ = _text_encoder_configs(s["text_hidden"], s["text_layers"], vocab_size)
    head_dim = s["transformer_head_dim"]
    torch.manual_seed(s["seed"])
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16 * 4,
        num_layers=s["transformer_layers"],
        num_single_layers=s["transformer_layers"],
        attention_head_dim=head_dim,
        num_attention_heads=s["transformer_heads"],
        joint_attention_dim=s["text_hidden"],
        pooled_projection_dim=cfg.hidden_size,
        guidance_embeds=False,
        axes_dims_rope=(head_dim // 4, head_dim // 4, head_dim // 2),
    )
    torch.manual_seed(s["seed"] + 1)
    vae = _kl_vae(s, 16, 0.3611, 0.1159)
    torch.manual_seed(s["seed"] + 2)
    text_encoder = CLIPTextModel(cfg)
    torch.manual_seed(s["seed"] + 3)
    text_encoder_2 = _t5_encoder(s["text_hidden"], s["text_layers"], t5_vocab)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    return FluxPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )


def _build_pixart(s: dict):
    """PixArt-Sigma: a T5 encoder, the PixArt transformer (adaLN-single, learned sigma), SDXL's KL VAE, DPM-Solver."""
    import torch
    from diffusers import DPMSolverMultistepScheduler, PixArtSigmaPipeline, PixArtTransformer2DModel

    tokenizer, t5_vocab = _tokenizer(write_t5_tokenizer, "T5Tokenizer")
    heads, head_dim = s["transformer_heads"], s["transformer_head_dim"]
    torch.manual_seed(s["seed"])
    transformer = PixArtTransformer2DModel(
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        in_channels=4,
        out_channels=8,
        num_layers=s["transformer_layers"],
        cross_attention_dim=heads * head_dim,
        sample_size=_latent(s),
        patch_size=2,
        caption_channels=s["text_hidden"],
        norm_type="ada_norm_single",
        use_additional_conditions=False,
        interpolation_scale=1,
    )
    torch.manual_seed(s["seed"] + 1)
    vae = _kl_vae(s, 4, 0.13025)
    torch.manual_seed(s["seed"] + 2)
    text_encoder = _t5_encoder(s["text_hidden"], s["text_layers"], t5_vocab)
    scheduler = DPMSolverMultistepScheduler(
        beta_start=0.0001, beta_end=0.02, beta_schedule="linear", prediction_type="epsilon"
    )
    return PixArtSigmaPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )


def _build_sana(s: dict, sprint: bool = False):
    """SANA (and SANA-Sprint): a Gemma-2 text encoder, the linear-attention SANA transformer, a deep-compression
    autoencoder (AutoencoderDC, 32 latent channels), flow DPM-Solver (Sprint: SCM, guidance embedded)."""
    import torch
    from diffusers import (
        AutoencoderDC,
        DPMSolverMultistepScheduler,
        SanaPipeline,
        SanaSprintPipeline,
        SanaTransformer2DModel,
        SCMScheduler,
    )
    from transformers import Gemma2Config, Gemma2Model

    tokenizer, vocab_size = _tokenizer(write_gemma_tokenizer, "GemmaTokenizer")
    heads, head_dim, hidden = s["transformer_heads"], s["transformer_head_dim"], s["text_hidden"]
    torch.manual_seed(s["seed"])
    transformer = SanaTransformer2DModel(
        in_channels=32,
        out_channels=32,
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        num_layers=s["transformer_layers"],
        num_cross_attention_heads=heads,
        cross_attention_head_dim=head_dim,
        cross_attention_dim=heads * head_dim,
        caption_channels=hidden,
        mlp_ratio=2.5,
        sample_size=_latent(s),
        patch_size=1,
        qk_norm="rms_norm_across_heads" if sprint else None,
        guidance_embeds=sprint,
    )
    vc = tuple(max(c, 32) for c in s["vae_channels"])  # DC-AE's shortcuts need widths that are multiples of 32
    torch.manual_seed(s["seed"] + 1)
    vae = AutoencoderDC(
        in_channels=3,
        latent_channels=32,
        attention_head_dim=8,
        encoder_block_types=("ResBlock",) * (len(vc) - 1) + ("EfficientViTBlock",),
        decoder_block_types=("ResBlock",) * (len(vc) - 1) + ("EfficientViTBlock",),
        encoder_block_out_channels=vc,
        decoder_block_out_channels=vc,
        encoder_layers_per_block=(1,) * len(vc),
        decoder_layers_per_block=(1,) * len(vc),
        encoder_qkv_multiscales=((),) * (len(vc) - 1) + ((5,),),
        decoder_qkv_multiscales=((),) * (len(vc) - 1) + ((5,),),
        downsample_block_type="conv",
        upsample_block_type="interpolate",
        decoder_norm_types="rms_norm",
        decoder_act_fns="silu",
        scaling_factor=0.41407,
    )
    torch.manual_seed(s["seed"] + 2)
    text_encoder = Gemma2Model(
        Gemma2Config(
            vocab_size=vocab_size,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=s["text_layers"],
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=hidden // 2,
            max_position_embeddings=4096,
            pad_token_id=0,
            eos_token_id=1,
            bos_token_id=2,
        )
    )
    if sprint:
        scheduler = SCMScheduler(num_train_timesteps=1000, prediction_type="trigflow", sigma_data=0.5)
        return SanaSprintPipeline(
            tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
        )
    scheduler = DPMSolverMultistepScheduler(flow_shift=3.0, use_flow_sigmas=True, prediction_type="flow_prediction")
    return SanaPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )


def _build_dit(s: dict):
    """Class-conditional DiT: the DiT transformer (adaLN-zero, 1000 classes + the null class, learned sigma), a KL
    VAE, DDIM; `labels` become its id2label (label i = class id i)."""
    import torch
    from diffusers import DDIMScheduler, DiTPipeline, DiTTransformer2DModel

    torch.manual_seed(s["seed"])
    transformer = DiTTransformer2DModel(
        num_attention_heads=s["transformer_heads"],
        attention_head_dim=s["transformer_head_dim"],
        in_channels=4,
        out_channels=8,
        num_layers=s["transformer_layers"],
        sample_size=_latent(s),
        patch_size=2,
        num_embeds_ada_norm=1000,
    )  # the pipeline's null class is id 1000, as in the ImageNet checkpoints
    torch.manual_seed(s["seed"] + 1)
    vae = _kl_vae(s, 4, 0.18215)
    scheduler = DDIMScheduler(beta_start=0.0001, beta_end=0.02, beta_schedule="linear", clip_sample=False)
    id2label = {str(i): label for i, label in enumerate(s["labels"])}
    pipe = DiTPipeline(transformer=transformer, vae=vae, scheduler=scheduler, id2label=id2label)
    pipe.register_to_config(id2label=id2label)  # saved into model_index.json, as in the hub checkpoints
    return pipe


_BUILDERS = {
    "sd": _build_sd,
    "sd3": _build_sd3,
    "flux": _build_flux,
    "pixart": _build_pixart,
    "sana": _build_sana,
    "sana_sprint": lambda s: _build_sana(s, sprint=True),
    "dit": _build_dit,
}


def build_tiny_decoder(spec: dict | None = None):
    """A tiny random `AutoencoderTiny` (TAESD's architecture) whose latents match the tiny pipeline of `spec`:
    same latent channels, same upscaling factor. Seeded."""
    import torch
    from diffusers import AutoencoderTiny

    s = tiny_spec(spec)
    family = family_named(s["family"])
    n = len(s["vae_channels"])
    torch.manual_seed(s["seed"] + 10)
    return AutoencoderTiny(
        encoder_block_out_channels=(8,) * n,
        decoder_block_out_channels=(8,) * n,
        num_encoder_blocks=(1,) * n,
        num_decoder_blocks=(1,) * n,
        latent_channels=family.latent_channels,
    )


def save_tiny_pipeline(out_dir: Path, spec: dict | None = None) -> Path:
    """Build the tiny pipeline and save it as a diffusers directory (with `tiny_decoder/`), written atomically
    (gendistill.atomic: an interrupted build leaves nothing that looks complete)."""
    from ..atomic import atomic_path

    out_dir = Path(out_dir)
    pipe = build_tiny_pipeline(spec)
    with atomic_path(out_dir) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
        build_tiny_decoder(spec).save_pretrained(tmp / "tiny_decoder", safe_serialization=True)
        (tmp / "RANDOM_WEIGHTS.txt").write_text(
            "This pipeline has RANDOM weights (built offline by gendistill.generator.build for the demo/tests).\n"
            "Its images are noise, not pictures of the prompted classes. tiny_decoder/ is a random AutoencoderTiny\n"
            "for generation.decoder: tiny.\n"
            f"spec: {json.dumps(tiny_spec(spec), sort_keys=True)}\n"
        )
    return out_dir


def build_full_random_pipeline(config_dir: Path, torch_dtype=None, seed: int = 0):
    """Full-size SDXL-Turbo architecture with random weights from the component configs in `config_dir`.

    The tokenizers are the project's character-level CLIP tokenizer (77 tokens, same sequence length as the
    real one), so the compute per image equals the real checkpoint's.
    """
    import tempfile

    import torch
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    config_dir = Path(config_dir)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer_files(Path(tmp))
        tokenizer = CLIPTokenizer.from_pretrained(tmp)
        tokenizer_2 = CLIPTokenizer.from_pretrained(tmp)
    dtype = torch_dtype or torch.float32
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(config_dir / "unet")).to(dtype)
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(config_dir / "vae")).to(dtype)
    te1 = CLIPTextModel(CLIPTextConfig.from_pretrained(config_dir / "text_encoder")).to(dtype)
    te2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(config_dir / "text_encoder_2")).to(dtype)
    scheduler = EulerAncestralDiscreteScheduler.from_config(
        EulerAncestralDiscreteScheduler.load_config(config_dir / "scheduler")
    )
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=te1,
        text_encoder_2=te2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
    )
