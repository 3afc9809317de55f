"""fedmeta's experiment runner and its helpers."""
