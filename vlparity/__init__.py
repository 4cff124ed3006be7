"""vlparity: validation and parity harness for vision-language models cut apart for deployment."""

__version__ = "0.1.0"
