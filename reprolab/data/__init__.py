"""Language-model data: a source yields token batches; one DataModule serves every source.

Sources: `markov` (seeded synthetic text with an exactly known entropy floor), `text` (local
files, e.g. ../shared/data/lm), `hf` (an HF dataset id, streamed). Each is a typed config in
`reprolab.data.config` whose ``build()`` returns a `Source`.
"""
