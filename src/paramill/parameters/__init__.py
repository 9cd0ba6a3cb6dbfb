"""Parameters: where values come from, how each language renders them, what a notebook declares."""

from .declared import Parameter, check_parameters
from .sources import cast_value, json_safe, load_yaml, resolve
from .translators import Translator, get_translator, register_translator

__all__ = [
    "Parameter",
    "Translator",
    "cast_value",
    "check_parameters",
    "get_translator",
    "json_safe",
    "load_yaml",
    "register_translator",
    "resolve",
]
