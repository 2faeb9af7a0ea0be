"""Compute primitives shared by the model formats, the engine and training.

* :mod:`.device`: the torch device (CUDA when present) and autocast (float16 on GPU only);
* :mod:`.preprocess`: exact reorientation to RAS, resampling, intensity normalisation;
* :mod:`.plugin_calls`: calling a plugin's factory or function with its failures turned into
  one-line :class:`~medseg.errors.PluginError`\\ s.
"""
