"""The generator models the workflow samples from when no real one is given: the tiny random-weight pipelines of
each family (build), the demo's small generator fitted to its classes (fit), and the tokenizer files they ship."""
