"""Scala (Apache Toree, sparkmagic's sparkkernel)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from .base import (
    C_NAMED,
    INT32,
    INT64,
    LanguageTranslator,
    escape,
    utf16_escape,
)

# The JVM has no unsetenv. Its own copy of the environment (System.getenv, a ProcessBuilder's
# environment()) loses the variable by reflection (Spark opens java.lang to it); a child started
# without touching environment() gets the process's native environment, where the variable's
# bytes are overwritten in place through /proc/self/mem (the block /proc/self/stat locates).
_SCALA_FORGET = """locally {
  val n = {NAME}
  scala.util.Try {
    val f = Class.forName("java.lang.ProcessEnvironment").getDeclaredField("theEnvironment")
    f.setAccessible(true)
    f.get(null).asInstanceOf[java.util.Map[AnyRef, AnyRef]].keySet.removeIf(_.toString == n)
  }
  scala.util.Try {
    val stat = scala.io.Source.fromFile("/proc/self/stat").mkString
    val fields = stat.substring(stat.lastIndexOf(')') + 2).split(' ')
    val (start, end) = (fields(47).toLong, fields(48).toLong)
    val mem = new java.io.RandomAccessFile("/proc/self/mem", "rw")
    try {
      val block = new Array[Byte]((end - start).toInt)
      mem.seek(start)
      mem.readFully(block)
      val key = (n + "=").getBytes("UTF-8")
      for (i <- 0 to block.length - key.length
           if (i == 0 || block(i - 1) == 0) && block.slice(i, i + key.length).sameElements(key)) {
        val stop = block.indexOf(0.toByte, i) match { case -1 => block.length; case k => k }
        val equals = key.length - 10  // PARAMILL_________=______: neither name nor value
        mem.seek(start + i + 9)
        mem.write(Array.tabulate(stop - i - 9)(k => (if (k == equals) '=' else '_').toByte))
      }
    } finally mem.close()
  }
  ()
}"""


class ScalaTranslator(LanguageTranslator):
    """Scala (Apache Toree, sparkmagic's sparkkernel)."""

    language = "Scala"
    comment_prefix = "//"
    keywords = frozenset(
        "abstract case catch class def do else extends false final finally for forSome if "
        "implicit import lazy macro match new null object override package private protected "
        "return sealed super this throw trait try true type val var while with yield".split()
    )

    def render_secret(self, env_var: str) -> str:
        return f"sys.env({self.render(env_var)})"

    def forget_secret(self, env_var: str) -> str:
        return _SCALA_FORGET.replace("{NAME}", self.render(env_var))

    def assign(self, name: str, rendered: str) -> str:
        return f"val {name} = {rendered}"

    def render_none(self, name: str) -> str:
        return "None"

    def render_text(self, value: str, name: str) -> str:
        # Scala 2.12 turns \uXXXX into the character before lexing, so quotes, backslashes and
        # line breaks must keep their named escapes; everything else non-ASCII goes as \u.
        return '"' + escape(value, C_NAMED, utf16_escape) + '"'

    def render_int(self, value: int) -> str:
        if value in INT32:
            return str(value)
        if value in INT64:
            return f"{value}L"
        return f'BigInt("{value}")'

    def render_nonfinite(self, value: float, name: str) -> str:
        if math.isnan(value):
            return "Double.NaN"
        return "Double.PositiveInfinity" if value > 0 else "Double.NegativeInfinity"

    def render_list(self, value: list, name: str) -> str:
        return "Seq(" + ", ".join(self.render(v, name) for v in value) + ")"

    def render_dict(self, value: Mapping, name: str) -> str:
        items = (f"{self.render(str(k), name)} -> {self.render(v, name)}" for k, v in value.items())
        return "Map(" + ", ".join(items) + ")"
