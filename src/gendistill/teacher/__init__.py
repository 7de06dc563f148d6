"""The teacher classifier (beyond the paper): trained on the real data or imported (classifier), then used to
keep the best of oversampled candidates (selection) and to label the distilled set softly (soft_labels)."""
