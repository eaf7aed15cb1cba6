"""Keras-style neural networks: layers, ``Sequential`` and subclassable ``Model`` with
``compile``/``fit``/``evaluate``/``predict``, losses, metrics, initializers, activations and
callbacks. Optimizers live in :mod:`webtensor.optimizers`, input pipelines in
:mod:`webtensor.data`.

    model = webtensor.nn.Sequential([
        webtensor.nn.Input((64,)),
        webtensor.nn.Dense(128, activation="relu"),
        webtensor.nn.Dense(10),
    ])
    model.compile("adam", webtensor.nn.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=10, validation_split=0.1)

Module map: ``layer`` (the ``Layer`` base), ``layers`` (the layers), ``attention``
(``MultiHeadAttention``, ``Attention``), ``model`` (``Model``,
``Sequential``, the training loop), ``rnn`` (``SimpleRNN``, ``LSTM``, ``GRU``, their cells, ``RNN``,
``Bidirectional``), ``losses``, ``metrics``, ``initializers``, ``activations``,
``callbacks``, ``mixed_precision`` (dtype policies, loss scaling), ``saving`` (weights in the safetensors layout; whole models in ``.keras`` files: ``Model.save``, ``load_model``), ``functional`` (``Input`` as a
KerasTensor and ``Model(inputs, outputs)``).
"""
from . import activations, callbacks, initializers, losses, metrics, saving
from . import layers
from . import mixed_precision
from .layer import InputSpec, Layer, reset_names
from .layers import (Activation, AveragePooling2D, AvgPool2D, BatchNormalization, Conv2D, Dense, Dropout,
                     Embedding, Flatten, GlobalAveragePooling2D, Input, InputLayer, Lambda, LayerNormalization,
                     MaxPool2D, MaxPooling2D, ReLU, Reshape, Softmax)
from .layers import (Add, Average, Concatenate, Conv1D, Conv2DTranspose, DepthwiseConv2D, GlobalMaxPooling2D,
                     LeakyReLU, Multiply, Normalization, PReLU, Rescaling, SeparableConv2D, UpSampling2D,
                     ZeroPadding2D)
from .layers import Masking
from . import rnn
from .rnn import GRU, LSTM, RNN, Bidirectional, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell
from . import attention
from .attention import Attention, MultiHeadAttention
from .functional import KerasTensor
from . import model
from .model import Functional, Model, Sequential
from .callbacks import Callback, EarlyStopping, History, LambdaCallback
from .saving import load_model, register_keras_serializable
from .. import optimizers, schedules

saving.register_builtins((layers, attention, rnn, model, losses, metrics, initializers, activations, optimizers, schedules),
                         (activations._REGISTRY, losses._REGISTRY, metrics._REGISTRY))

__all__ = ["Layer", "InputSpec", "reset_names", "Model", "Sequential", "Functional", "KerasTensor", "Input", "InputLayer", "Dense", "Conv2D",
           "MaxPool2D", "AvgPool2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "Flatten",
           "Reshape", "Lambda", "Dropout", "Activation", "ReLU", "Softmax", "Embedding", "LayerNormalization",
           "BatchNormalization", "Conv1D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "UpSampling2D",
           "ZeroPadding2D", "GlobalMaxPooling2D", "Add", "Multiply", "Average", "Concatenate", "LeakyReLU", "PReLU",
           "Rescaling", "Normalization", "MultiHeadAttention", "Attention", "attention",
           "Masking", "SimpleRNN", "LSTM", "GRU", "SimpleRNNCell", "LSTMCell", "GRUCell", "RNN", "Bidirectional", "rnn", "Callback", "History", "EarlyStopping", "LambdaCallback", "activations",
           "callbacks", "initializers", "layers", "losses", "metrics", "mixed_precision", "saving", "load_model",
           "register_keras_serializable"]


def __dir__():
    return list(__all__)
