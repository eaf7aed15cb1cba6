"""Keras-style layers, models, losses, metrics, optimizers and callbacks."""
