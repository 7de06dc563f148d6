"""Evaluation: train a model from scratch on a training set, test it on the real test set."""
