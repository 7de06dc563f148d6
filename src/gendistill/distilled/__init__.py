"""The distilled set from sampled images: post data augmentation (augment), the packaged dataset (package), and
regenerating one of its images from the manifest to check it (regenerate)."""
