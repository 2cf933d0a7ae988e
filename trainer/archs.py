"""Model architectures over one window's MFCC map (frames x n_mfcc).

* ``mlp``: the tutorial's network exactly (Flatten → Dense 512 → 256 → 64 → softmax).
* ``cnn``: a small temporal CNN over the MFCC map (convolution over time, a
  softmax per frame, averaged over the window), with noise, dropout and weight
  decay; the default, chosen by measured per-track accuracy.
"""

from __future__ import annotations

ARCHS = ("cnn", "mlp")
DEFAULT_ARCH = "cnn"


def build_model(arch: str, input_shape: tuple[int, ...], n_labels: int, *, learning_rate: float | None = None):
    """A compiled Keras model (Adam, sparse categorical cross-entropy, accuracy)."""
    import keras
    from keras import layers

    if arch == "mlp":
        model = keras.Sequential(
            [
                keras.Input(input_shape),
                layers.Flatten(),
                layers.Dense(512, activation="relu"),
                layers.Dense(256, activation="relu"),
                layers.Dense(64, activation="relu"),
                layers.Dense(n_labels, activation="softmax"),
            ],
            name="mlp",
        )
        lr = learning_rate or 1e-4
    elif arch == "cnn":
        # A temporal CNN: convolutions over time shared by every frame, a softmax
        # per frame, and the mean of the frames' probabilities. On the small
        # GTZAN excerpt set it beat both the tutorial MLP and 2-D CNNs with
        # batch norm (which collapsed), by per-track accuracy on the track split.
        reg = keras.regularizers.l2(1e-3)
        model = keras.Sequential(
            [
                keras.Input(input_shape),
                layers.GaussianNoise(0.1),
                layers.Conv1D(128, 5, padding="same", activation="relu", kernel_regularizer=reg),
                layers.Dropout(0.3),
                layers.Conv1D(128, 1, activation="relu", kernel_regularizer=reg),
                layers.Dropout(0.3),
                layers.Conv1D(n_labels, 1, activation="softmax"),
                layers.GlobalAveragePooling1D(),
            ],
            name="cnn",
        )
        lr = learning_rate or 1e-3
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
