"""Only here to hand the cffi builder to setuptools (out-of-line API mode): lb._csched."""

from setuptools import setup

setup(cffi_modules=["csched/build_csched.py:ffibuilder"])
