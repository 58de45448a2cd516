"""Training with MMR: the loop (`loop`, whose `train` is what `harness train` runs), the losses
(`losses`), the training data and its mixtures (`data`) and the dev-set evaluations during
training (`dev_eval`). The package itself imports nothing: benchmark modules read
`harness.training.data` without loading torch."""
