"""One video in, results out: decode, sampling, scenes, models, drawing and the writer.

The heavy libraries (PyAV, OpenCV, torch) load with the modules that use them.
"""
