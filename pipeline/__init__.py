"""Decryptscope: why TLS decryption on PAN-OS firewalls fails, as it happens."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("decryptscope")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
