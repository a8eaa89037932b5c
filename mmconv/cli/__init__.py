"""What the command-line tools under ``tools/`` share: refusing bad input in one sentence, loading a
run's config, locking the work dir, and converting official checkpoints. Nothing under ``mmconv``
imports this package; it imports the rest."""
