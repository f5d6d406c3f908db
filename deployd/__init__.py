"""deployd: a release-channel distribution server and its operator-side client."""

__version__ = "0.1.0"
