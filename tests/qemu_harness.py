"""Run Debian's QEMU to make a fresh, real FlatView trace: boot, a scenario over QMP, quit.

Used by tests/test_real_qemu.py and samples/make_samples.py. Standard library only. Every wait
is bounded; on any failure QEMU is killed, so a caller never hangs.

With no guest OS, nobody acknowledges a ``device_del``: :class:`Unplug` does what a guest's
ACPI code would, and writes the slot's bit to the PIIX4 PCI hotplug eject register through the
human monitor's ``o`` command. QEMU 7.2 then unplugs the device and emits ``DEVICE_DELETED``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

QEMU_BINARY = "qemu-system-x86_64"
DEFAULT_TRACE_PATTERNS = ("flatview_*", "pci_update_mappings_*")
# PIIX4 ACPI PCI hotplug registers (hw/acpi/pcihp.c; base 0xae00 on the pc machine).
PIIX4_PCIHP_EJECT_PORT = 0xAE08  # PCEJ: write (1 << slot) to eject the slot on the selected bus
PIIX4_PCIHP_SELECT_PORT = 0xAE10  # BNUM: selects the bus by its ACPI bsel number
QMP_CONNECT_TIMEOUT_S = 10.0
QMP_REPLY_TIMEOUT_S = 10.0
QUIT_TIMEOUT_S = 10.0


class QemuHarnessError(RuntimeError):
    """QEMU is missing, did not start, or a scenario step failed (QEMU has been killed)."""


def qemu_binary() -> str:
    """Path of ``qemu-system-x86_64``, or a clear error naming the package to install."""
    found = shutil.which(QEMU_BINARY)
    if found is None:
        raise QemuHarnessError(
            f"{QEMU_BINARY} not found on PATH: install Debian's qemu-system-x86 "
            "(`make system-deps` does; CI runs it before the tests)"
        )
    return found


def qemu_version() -> str:
    """The first line of ``qemu-system-x86_64 --version``."""
    out = subprocess.run(
        [qemu_binary(), "--version"], capture_output=True, text=True, timeout=10, check=True
    )
    return out.stdout.splitlines()[0].strip()


class Qmp:
    """A minimal QMP client over a unix socket: commands, HMP passthrough and async events."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""
        self.events: list[dict[str, Any]] = []  # every async event seen, in arrival order
        self.greeting = self._read_message(QMP_REPLY_TIMEOUT_S)
        if "QMP" not in self.greeting:
            raise QemuHarnessError(f"unexpected QMP greeting: {self.greeting!r}")

    def _read_message(self, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                raise QemuHarnessError(f"no QMP message within {timeout_s:.0f} s")
            self._sock.settimeout(left_s)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise QemuHarnessError("QMP connection closed by QEMU")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def execute(self, command: str, **arguments: Any) -> Any:
        """Run one QMP command and return its ``return`` value; async events are kept."""
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self._sock.sendall(json.dumps(request).encode() + b"\n")
        while True:
            message = self._read_message(QMP_REPLY_TIMEOUT_S)
            if "event" in message:
                self.events.append(message)
            elif "error" in message:
                raise QemuHarnessError(f"QMP {command} failed: {message['error']}")
            elif "return" in message:
                return message["return"]

    def hmp(self, command_line: str) -> str:
        """Run a human-monitor command (e.g. ``o /w 0xae08 0x20``) and return its output."""
        output = self.execute("human-monitor-command", **{"command-line": command_line})
        text = str(output)
        if "invalid" in text.lower() or "unknown" in text.lower():
            raise QemuHarnessError(f"HMP {command_line!r} failed: {text.strip()}")
        return text

    def wait_event(
        self, name: str, timeout_s: float, *, since: int = 0, **data: Any
    ) -> dict[str, Any]:
        """Wait for an async event ``name`` whose data has the given items.

        Events already received count from index ``since`` of ``events`` on.
        """

        def matches(message: dict[str, Any]) -> bool:
            got = message.get("data", {})
            return message.get("event") == name and all(got.get(k) == v for k, v in data.items())

        for message in self.events[since:]:
            if matches(message):
                return message
        deadline = time.monotonic() + timeout_s
        while True:
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                raise QemuHarnessError(f"no {name} {data or ''} event within {timeout_s:.0f} s")
            message = self._read_message(left_s)
            if "event" in message:
                self.events.append(message)
                if matches(message):
                    return message


class Step(Protocol):
    """One scenario step: a name for the record, and what to do over QMP."""

    @property
    def name(self) -> str: ...

    def run(self, qmp: Qmp) -> None: ...


@dataclass(frozen=True)
class Pause:
    """Let the guest run (SeaBIOS boots in well under a second under TCG)."""

    seconds: float
    label: str = "boot"

    @property
    def name(self) -> str:
        return f"{self.label} (wait {self.seconds:g} s)"

    def run(self, qmp: Qmp) -> None:
        time.sleep(self.seconds)


def unmapped_bars(qmp: Qmp) -> list[str]:
    """BARs 0-5 of every PCI device (behind bridges too) that have no address yet.

    SeaBIOS assigns and enables them during its PCI setup, so an empty list means the firmware
    has done the part of a boot that remaps memory. ROM BARs (6) are left out: SeaBIOS maps a
    ROM only while it copies it.
    """
    missing: list[str] = []

    def walk(devices: list[dict[str, Any]]) -> None:
        for device in devices:
            where = f"{device['bus']:02x}:{device['slot']:02x}.{device['function']}"
            for region in device.get("regions", []):
                if region["bar"] < 6 and region["address"] == -1:
                    missing.append(f"{where} BAR{region['bar']}")
            walk(device.get("pci_bridge", {}).get("devices", []))

    for bus in qmp.execute("query-pci"):
        walk(bus["devices"])
    return missing


def wait_for_firmware(qmp: Qmp, timeout_s: float) -> None:
    """Poll until SeaBIOS has mapped every BAR (see ``unmapped_bars``), at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while missing := unmapped_bars(qmp):
        if time.monotonic() > deadline:
            raise QemuHarnessError(
                f"firmware left BARs unmapped after {timeout_s:.0f} s: {', '.join(missing)}"
            )
        time.sleep(0.05)


@dataclass(frozen=True)
class Boot:
    """Let SeaBIOS boot: wait until it has mapped every PCI BAR, then ``settle_s`` more.

    Waiting on the firmware rather than on the clock keeps a run's content the same on a busy
    machine, where TCG runs the firmware several times slower.
    """

    settle_s: float = 0.3
    timeout_s: float = 30.0

    @property
    def name(self) -> str:
        return f"boot (until SeaBIOS mapped the BARs, then {self.settle_s:g} s)"

    def run(self, qmp: Qmp) -> None:
        wait_for_firmware(qmp, self.timeout_s)
        time.sleep(self.settle_s)


@dataclass(frozen=True)
class Plug:
    """QMP ``device_add`` of ``driver`` with ``id`` on ``bus`` at slot ``addr``."""

    driver: str
    device_id: str
    bus: str = "pci.0"
    slot: int = 5
    settle_s: float = 0.2

    @property
    def name(self) -> str:
        return f"device_add {self.driver} id={self.device_id} bus={self.bus} addr={self.slot:#x}"

    def run(self, qmp: Qmp) -> None:
        qmp.execute(
            "device_add",
            driver=self.driver,
            id=self.device_id,
            bus=self.bus,
            addr=f"{self.slot:#x}",
        )
        time.sleep(self.settle_s)


@dataclass(frozen=True)
class Unplug:
    """QMP ``device_del``, then the guest's part: write the slot to the ACPI eject register.

    The bus is chosen by its ACPI number (bsel): 0 for the root bus ``pci.0``, a bridge's is read
    from its bus's ``acpi-pcihp-bsel`` property. Waits for ``DEVICE_DELETED``.
    """

    device_id: str
    slot: int = 5
    bridge: str | None = None  # id of the pci-bridge whose bus holds the device; None: pci.0
    timeout_s: float = 5.0

    @property
    def name(self) -> str:
        bus = self.bridge or "pci.0"
        return f"device_del id={self.device_id} (eject bus={bus} slot={self.slot:#x})"

    def run(self, qmp: Qmp) -> None:
        bsel = 0 if self.bridge is None else bridge_bsel(qmp, self.bridge)
        seen = len(qmp.events)
        qmp.execute("device_del", id=self.device_id)
        qmp.hmp(f"o /w {PIIX4_PCIHP_SELECT_PORT:#x} {bsel:#x}")
        qmp.hmp(f"o /w {PIIX4_PCIHP_EJECT_PORT:#x} {1 << self.slot:#x}")
        qmp.wait_event("DEVICE_DELETED", self.timeout_s, since=seen, device=self.device_id)


@dataclass(frozen=True)
class Reset:
    """QMP ``system_reset``; SeaBIOS runs again and maps the BARs of every device, new ones too.

    Waits for the ``RESET`` event (the reset itself happens later in the main loop), then for
    the firmware as :class:`Boot` does, then ``settle_s`` more.
    """

    settle_s: float = 0.3
    timeout_s: float = 30.0

    @property
    def name(self) -> str:
        return f"system_reset (until SeaBIOS mapped the BARs, then {self.settle_s:g} s)"

    def run(self, qmp: Qmp) -> None:
        seen = len(qmp.events)
        qmp.execute("system_reset")
        qmp.wait_event("RESET", self.timeout_s, since=seen, guest=False)
        wait_for_firmware(qmp, self.timeout_s)
        time.sleep(self.settle_s)


@dataclass(frozen=True)
class StepRecord:
    """When a step ran, as wall-clock seconds (the clock of ``-msg timestamp=on``)."""

    name: str
    started_s: float
    ended_s: float


@dataclass(frozen=True)
class QemuRun:
    """What one traced QEMU run left behind."""

    log_path: Path
    command: tuple[str, ...]  # argv, with the temporary QMP socket path in it
    machine: str
    timestamps: bool
    pid: int  # QEMU's process id: also the thread id of its main thread
    started_s: float  # wall clock just before QEMU was started
    ended_s: float  # wall clock just after QEMU exited
    steps: tuple[StepRecord, ...]
    qmp_events: tuple[dict[str, Any], ...]
    qemu_stderr: str
    version: dict[str, Any] = field(default_factory=dict)  # QMP greeting's version


def qemu_command(
    log_path: Path,
    qmp_socket: Path,
    *,
    machine: str = "pc",
    timestamps: bool = True,
    trace_patterns: Sequence[str] = DEFAULT_TRACE_PATTERNS,
    memory_mb: int = 128,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The argv of a TCG QEMU with no display, serial, NIC or disk, tracing to ``log_path``."""
    argv = [qemu_binary(), "-accel", "tcg", "-m", str(memory_mb), "-machine", machine]
    argv += ["-display", "none", "-serial", "none", "-monitor", "none", "-nic", "none"]
    if timestamps:
        argv += ["-msg", "timestamp=on"]
    for pattern in trace_patterns:
        argv += ["-trace", pattern]
    argv += ["-D", str(log_path), "-qmp", f"unix:{qmp_socket},server=on,wait=off"]
    return [*argv, *extra_args]


def _connect(qmp_socket: Path, process: subprocess.Popen[bytes]) -> socket.socket:
    deadline = time.monotonic() + QMP_CONNECT_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise QemuHarnessError(f"QEMU exited with status {process.returncode} before QMP")
        if qmp_socket.exists():
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(qmp_socket))
            except OSError:
                sock.close()
            else:
                return sock
        time.sleep(0.02)
    raise QemuHarnessError(f"QMP socket did not appear within {QMP_CONNECT_TIMEOUT_S:.0f} s")


@contextlib.contextmanager
def _killed_on_exit(process: subprocess.Popen[bytes]) -> Iterator[None]:
    try:
        yield
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=QUIT_TIMEOUT_S)


def run_qemu_trace(
    log_path: Path,
    *,
    machine: str = "pc",
    timestamps: bool = True,
    scenario: Sequence[Step] = (Boot(),),
    extra_args: Sequence[str] = (),
    trace_patterns: Sequence[str] = DEFAULT_TRACE_PATTERNS,
    memory_mb: int = 128,
) -> QemuRun:
    """Start QEMU tracing to ``log_path``, run ``scenario`` over QMP, ``quit`` and wait.

    Parameters
    ----------
    log_path
        The trace file (QEMU's ``-D``); overwritten.
    machine
        ``pc`` or ``q35``. Hotplug steps need ``pc`` (PIIX4 ACPI PCI hotplug).
    timestamps
        ``-msg timestamp=on``: lines become ``TID@SEC.USEC:event ...``; else bare ``event ...``.
    scenario
        Steps run in order after ``qmp_capabilities``; the default lets SeaBIOS boot.
    extra_args
        More QEMU arguments, e.g. ``-device pci-bridge,id=br1,chassis_nr=1``.

    Returns
    -------
    QemuRun
        The trace path and a record of the run (wall-clock window, steps, QMP events).

    Examples
    --------
    >>> run = run_qemu_trace(Path("/tmp/boot.log"))  # doctest: +SKIP
    >>> run.log_path.read_text().splitlines()[0]  # doctest: +SKIP
    '4711@1795634041.261176:flatview_new 0x559ee62c3ff0 (root (nil))'
    """
    log_path = Path(log_path)
    log_path.unlink(missing_ok=True)
    # A short private directory: unix socket paths are limited to 108 bytes.
    with tempfile.TemporaryDirectory(prefix="qtrace-qmp-") as tmp:
        qmp_socket = Path(tmp) / "qmp.sock"
        argv = qemu_command(
            log_path,
            qmp_socket,
            machine=machine,
            timestamps=timestamps,
            trace_patterns=trace_patterns,
            memory_mb=memory_mb,
            extra_args=extra_args,
        )
        with tempfile.TemporaryFile() as stderr_file:
            started_s = time.time()
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr_file
            )
            records: list[StepRecord] = []
            with _killed_on_exit(process):
                try:
                    sock = _connect(qmp_socket, process)
                    with sock:
                        qmp = Qmp(sock)
                        qmp.execute("qmp_capabilities")
                        for step in scenario:
                            step_started_s = time.time()
                            step.run(qmp)
                            records.append(StepRecord(step.name, step_started_s, time.time()))
                        seen = len(qmp.events)
                        qmp.execute("quit")
                        qmp.wait_event("SHUTDOWN", QUIT_TIMEOUT_S, since=seen)
                    process.wait(timeout=QUIT_TIMEOUT_S)
                except (QemuHarnessError, OSError, subprocess.TimeoutExpired, ValueError) as exc:
                    stderr_file.seek(0)
                    tail = stderr_file.read().decode(errors="replace").strip()[-500:]
                    raise QemuHarnessError(
                        f"QEMU run failed: {exc}" + (f"; QEMU said: {tail}" if tail else "")
                    ) from exc
            ended_s = time.time()
            stderr_file.seek(0)
            qemu_stderr = stderr_file.read().decode(errors="replace")
    if process.returncode != 0:
        raise QemuHarnessError(f"QEMU exited with status {process.returncode}: {qemu_stderr}")
    if not log_path.exists():
        raise QemuHarnessError(f"QEMU wrote no trace file at {log_path}")
    return QemuRun(
        log_path=log_path,
        command=tuple(argv),
        machine=machine,
        timestamps=timestamps,
        pid=process.pid,
        started_s=started_s,
        ended_s=ended_s,
        steps=tuple(records),
        qmp_events=tuple(qmp.events),
        qemu_stderr=qemu_stderr,
        version=dict(qmp.greeting["QMP"]["version"]),
    )


def bridge_bsel(qmp: Qmp, bridge_id: str) -> int:
    """The ACPI hotplug bus number QEMU gave the secondary bus of the pci-bridge ``bridge_id``."""
    value = qmp.execute(
        "qom-get", path=f"/machine/peripheral/{bridge_id}/{bridge_id}", property="acpi-pcihp-bsel"
    )
    return int(value)
