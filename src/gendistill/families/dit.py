"""DiT (DiTPipeline), class-conditional on ImageNet's labels: it is given a class id, not a text. A class's prompt
must name one of the model's labels (id2label; each comma-separated synonym counts, case is ignored) or be the
class id itself. The DiT transformer works on 2x2 patches of SD's KL latents and generates at its native
resolution only."""

from __future__ import annotations

from .base import Adapter, Family, autoencoder_facts, generators, where
from .tiny import kl_vae, latent_size


def dit_label_table(id2label: dict) -> dict[str, int]:
    """label text -> class id, as DiTPipeline builds it: every comma-separated synonym of a class names it."""
    table: dict[str, int] = {}
    for key, value in id2label.items():
        for label in str(value).split(","):
            table[label.strip()] = int(key)
    return dict(sorted(table.items()))


def dit_label_id(prompt: str, table: dict[str, int]) -> int | None:
    """The class id a prompt names: a label (exact, then ignoring case), or the id itself as digits."""
    p = prompt.strip()
    if p in table:
        return table[p]
    lower = {k.lower(): v for k, v in table.items()}
    if p.lower() in lower:
        return lower[p.lower()]
    if p.isdigit() and int(p) in set(table.values()):
        return int(p)
    return None


class DiTAdapter(Adapter):
    """Classifier-free guidance (guidance > 1) runs the null class alongside."""

    def __init__(self, family, pipe, device=None):
        super().__init__(family, pipe, device)
        self.labels = getattr(pipe, "labels", None) or {}  # DiTPipeline's own table, from its id2label

    def native_resolution(self) -> int:
        return self.net().config.sample_size * autoencoder_facts(dict(self.pipe.vae.config))["scale"]

    def check(self, gen):
        native = self.native_resolution()
        if gen["resolution"] != native:
            raise ValueError(
                f"resolution {gen['resolution']}: this DiT generates at its native {native} px only. "
                f"Fix: generation.resolution: {native}."
            )

    def encode(self, prompt, guidance):
        label = dit_label_id(prompt, self.labels)
        if label is None:
            raise ValueError(
                f"prompt {prompt!r} is not a label of this class-conditional DiT. Fix: a per-class "
                f"prompt override naming one of its labels (or the class id)."
            )
        return label

    def generate(self, emb, seeds, gen):
        return self.pipe(
            class_labels=[emb] * len(seeds),
            guidance_scale=gen["guidance_scale"],
            generator=generators(seeds),
            num_inference_steps=gen["steps"],
            output_type="pt",
        ).images

    def denoiser_call(self, resolution, guidance):
        import torch  # deferred: heavy, and the plan imports this module for its facts

        tr = self.net()
        w = where(tr)
        lat = self.latent(resolution, tr.config.in_channels)
        t = torch.full((1,), 999, device=w["device"], dtype=torch.long)
        cls = torch.zeros(1, device=w["device"], dtype=torch.long)
        return lambda: tr(lat, timestep=t, class_labels=cls)


def build_tiny(s: dict):
    """Class-conditional DiT: the DiT transformer (adaLN-zero, 1000 classes + the null class, learned sigma), a KL
    VAE, DDIM; `labels` become its id2label (label i = class id i)."""
    import torch  # deferred: heavy, and the plan imports this module for its facts
    from diffusers import DDIMScheduler, DiTPipeline, DiTTransformer2DModel

    torch.manual_seed(s["seed"])
    transformer = DiTTransformer2DModel(
        num_attention_heads=s["transformer_heads"],
        attention_head_dim=s["transformer_head_dim"],
        in_channels=FAMILY.latent_channels,
        out_channels=2 * FAMILY.latent_channels,  # learned sigma
        num_layers=s["transformer_layers"],
        sample_size=latent_size(s),
        patch_size=FAMILY.tiny_patch_size,
        num_embeds_ada_norm=1000,
    )  # the pipeline's null class is id 1000, as in the ImageNet checkpoints
    torch.manual_seed(s["seed"] + 1)
    vae = kl_vae(s, FAMILY.latent_channels, 0.18215)
    scheduler = DDIMScheduler(beta_start=0.0001, beta_end=0.02, beta_schedule="linear", clip_sample=False)
    id2label = {str(i): label for i, label in enumerate(s["labels"])}
    pipe = DiTPipeline(transformer=transformer, vae=vae, scheduler=scheduler, id2label=id2label)
    pipe.register_to_config(id2label=id2label)  # saved into model_index.json, as in the hub checkpoints
    return pipe


FAMILY = Family(
    name="dit",
    title="DiT, class-conditional (ImageNet labels)",
    pipelines=("DiTPipeline",),
    example="facebook/DiT-XL-2-256",
    tiny_decoders="madebyollin/taesd",
    latent_channels=4,
    adapter=DiTAdapter,
    build_tiny=build_tiny,
    conditioning="class",
    native_resolution_only=True,
    tiny_patch_size=2,
    example_config="dit-xl-2-256",
)
FAMILIES = (FAMILY,)
