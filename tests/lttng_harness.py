"""Make a real LTTng (``ust`` backend) trace of QEMU's FlatView events, and its babeltrace2 text.

Debian's QEMU has no ``ust`` backend, so a small UST tracepoint provider declares what
QEMU's generated one does: provider ``qemu``, events ``flatview_new``,
``flatview_destroy_rcu`` and ``flatview_destroy``, each with the integer-hex fields ``view``
and ``root``. A small program replays a real QEMU log through those tracepoints, one call
per FlatView line, in order. A session daemon of its own (``lttng-sessiond --no-kernel``, in
a private mount namespace with a tmpfs over ``/run`` and its own ``LTTNG_HOME``)
records them with the ``vpid``, ``vtid`` and ``procname`` contexts; ``babeltrace2`` prints
the CTF trace as text:

    [10:30:08.123456789] (+0.000001234) host qemu:flatview_new: { cpu_id = 0 },
    { vpid = 4242, vtid = 4242, procname = "qemu-replay" }, { view = 0x55.., root = 0x0 }

(one line per event). Needs Debian's lttng-tools, liblttng-ust-dev, babeltrace2 and a C
compiler. Every step is bounded in time; the daemons started here are stopped.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_S = 120
PROVIDER_H = r"""
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER qemu
#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "./qemu_tp.h"
#if !defined(QEMU_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define QEMU_TP_H
#include <lttng/tracepoint.h>
#define FLATVIEW_EVENT(name)                                              \
    LTTNG_UST_TRACEPOINT_EVENT(qemu, name,                                \
        LTTNG_UST_TP_ARGS(void *, view, void *, root),                    \
        LTTNG_UST_TP_FIELDS(lttng_ust_field_integer_hex(void *, view, view) \
                            lttng_ust_field_integer_hex(void *, root, root)))
FLATVIEW_EVENT(flatview_new)
FLATVIEW_EVENT(flatview_destroy_rcu)
FLATVIEW_EVENT(flatview_destroy)
#endif
#include <lttng/tracepoint-event.h>
"""
REPLAY_C = r"""
#define LTTNG_UST_TRACEPOINT_DEFINE
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#include "qemu_tp.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A pointer as QEMU's %p prints it: 0x hex, or (nil). */
static void *pointer(const char *text)
{
    return strcmp(text, "(nil)") ? (void *)strtoull(text, NULL, 16) : NULL;
}

int main(void)
{
    char line[4096], name[64], view[32], root[32];
    while (fgets(line, sizeof line, stdin)) {
        const char *event = strstr(line, "flatview_");
        if (!event || sscanf(event, "%63s %31s (root %31[^)])", name, view, root) != 3) {
            continue;
        }
        if (!strcmp(name, "flatview_new")) {
            lttng_ust_tracepoint(qemu, flatview_new, pointer(view), pointer(root));
        } else if (!strcmp(name, "flatview_destroy_rcu")) {
            lttng_ust_tracepoint(qemu, flatview_destroy_rcu, pointer(view), pointer(root));
        } else if (!strcmp(name, "flatview_destroy")) {
            lttng_ust_tracepoint(qemu, flatview_destroy, pointer(view), pointer(root));
        }
    }
    return 0;
}
"""


class LttngHarnessError(RuntimeError):
    """A tool is missing, or the capture failed (its output is in the message)."""


@dataclass(frozen=True)
class LttngCapture:
    ctf_dir: Path  # the session's output: the CTF trace (metadata and stream files)
    text: Path  # babeltrace2's text of it


def _run(args: list[str]) -> str:
    """Run ``args``; return its standard output, or fail with everything it said."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LttngHarnessError(f"{args[0]}: {exc}") from exc
    if done.returncode != 0:
        raise LttngHarnessError(f"{' '.join(args[:3])} failed: {done.stdout}{done.stderr}")
    return done.stdout


def capture_lttng(out: Path, log: Path) -> LttngCapture:
    """Replay the FlatView lines of the QEMU log ``log`` through LTTng; read it back as text.

    Examples
    --------
    >>> capture = capture_lttng(Path("/tmp/lt"), Path("samples/pc-boot-ts.log"))  # doctest: +SKIP
    >>> capture.text.read_text().count("qemu:flatview_new")  # doctest: +SKIP
    257
    """
    for tool in ("unshare", "lttng", "lttng-sessiond", "babeltrace2", "cc"):
        if shutil.which(tool) is None:
            raise LttngHarnessError(
                f"{tool} not found: install lttng-tools, liblttng-ust-dev and babeltrace2"
            )
    out.mkdir(parents=True, exist_ok=True)
    (out / "qemu_tp.h").write_text(PROVIDER_H)
    (out / "replay.c").write_text(REPLAY_C)
    replay = out / "qemu-replay"
    _run(["cc", "-O1", "-I", str(out), "-o", str(replay), str(out / "replay.c"), "-llttng-ust"])
    ctf = out / "ctf"
    home = out / "home"
    home.mkdir(exist_ok=True)
    script = f"""set -eu
mount -t tmpfs tmpfs /run
mkdir /run/lttng
export LTTNG_HOME={home}
timeout {TIMEOUT_S} lttng-sessiond --no-kernel & sessiond=$!
trap 'kill $sessiond 2>/dev/null; wait $sessiond 2>/dev/null || true' EXIT
for i in $(seq 200); do lttng list >/dev/null 2>&1 && break; sleep 0.05; done
lttng create qtrace --output={ctf}
lttng enable-event --userspace 'qemu:*'
lttng add-context --userspace -t vpid -t vtid -t procname
lttng start
{replay} < {log}
lttng stop
lttng destroy
"""
    (out / "capture.sh").write_text(script)
    _run(["unshare", "-m", "--propagation", "private", "sh", str(out / "capture.sh")])
    text = out / "babeltrace2.txt"
    text.write_text(_run(["babeltrace2", str(ctf)]))
    return LttngCapture(ctf, text)
