"""Tests compare against numpy: unless a test names a device, ops run on the "reference" device."""
import os

os.environ.setdefault("WEBTENSOR_DEVICE", "reference")
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
