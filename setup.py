"""The optional native extension; everything else is in pyproject.toml.

`optional=True`: without a compiler the install still succeeds and the pure-Python path serves
every response (fields/native.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "privacy_middleware.fields._native",
            ["src/privacy_middleware/fields/_native.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
