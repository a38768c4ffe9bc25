"""What the scripts in `recipes/` are made of, for your own scripts too:

- `parser`: defaults < a YAML/JSON config file < command-line overrides;
- `arguments`: the shared argument dataclasses (model, fine-tuning extras, evaluation of an adapted model);
- `models`: loading a text or image classifier (Hub id or folder, safetensors only, offline defaults);
- `preprocessing`: loading, checking, label-encoding, tokenizing / transforming and describing datasets;
- `baselines`: the facts of a run and the source-only baseline of the same study;
- `run`: training with each family's trainer, and the end of a run (evaluate, save, summary, card, push).
"""
