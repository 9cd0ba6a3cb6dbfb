"""Translators for the kernels beyond Python, registered as ``paramill.translators`` entry points.

Each follows papermill's rendering (spec 3.4) where that gives working code, and departs from it
where papermill's code is broken on real kernels (shared/testing/kernels.md): papermill escapes
strings with Python's ``unicode_escape``, whose ``\\xNN`` is not a character in R, Julia, Octave or
C#, and it passes through values the language cannot hold. Here such a value is either rendered
so the kernel gets it exactly, or refused with a ParameterError naming parameter and language
before any kernel starts.
"""

from .base import LanguageTranslator
from .bash import BashTranslator
from .dotnet import CSharpTranslator, FSharpTranslator, PowerShellTranslator
from .javascript import JavaScriptTranslator, TypeScriptTranslator
from .jvm import ScalaTranslator
from .matlab import MatlabTranslator, OctaveTranslator
from .r import JuliaTranslator, RTranslator

__all__ = [
    "BashTranslator",
    "CSharpTranslator",
    "FSharpTranslator",
    "JavaScriptTranslator",
    "JuliaTranslator",
    "LanguageTranslator",
    "MatlabTranslator",
    "OctaveTranslator",
    "PowerShellTranslator",
    "RTranslator",
    "ScalaTranslator",
    "TypeScriptTranslator",
]
