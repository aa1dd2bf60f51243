"""The names of the clip sampling modes and short-video policies.

Apart from `mrrn_keras.data.video` (which loads PyAV, half a second), so the
zoo's metadata checks and the `mrrn` parser can name them at no cost.
"""

SAMPLING_MODES = ("segments", "uniform", "dense")
SHORT_POLICIES = ("loop", "pad")
