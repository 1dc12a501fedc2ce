r"""Screenshots of what a user sees in TensorBoard for a finished search.

  python experiments/tensorboard_screens.py --run_dir=runs/rnn \
      --out=experiments/results/tensorboard

Starts TensorBoard on the run (127.0.0.1, a free port), opens the scalars,
text, images and HParams dashboards in headless Chromium (Debian package
``chromium``; ``--chromium`` for another binary), saves one PNG per
dashboard (``<out>_<dashboard>.png``, shrunk to a palette PNG under 300 KB
when Pillow is installed) and stops TensorBoard.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

#: Screenshot name -> TensorBoard URL fragment. ``scalars_search`` shows only the
#: search's own curves (reward, controller, search/*) of the run directory itself,
#: which the per-child HParams sessions otherwise push below the fold.
DASHBOARDS = {
    "scalars": "scalars",
    "scalars_search": "scalars&tagFilter=reward%7Ccontroller&regexInput=%5E%5C.%24"
                      "&_smoothingWeight=0",
    "text": "text",
    "images": "images",
    "hparams": "hparams",
}
MAX_BYTES = 300_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout_s: float) -> None:
    deadline = time.time() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            if time.time() > deadline:
                raise TimeoutError(f"TensorBoard did not answer at {url} in {timeout_s}s")
            time.sleep(1.0)


def shrink(path: Path) -> None:
    """A palette PNG (screenshots have few colours) so that it stays under 300 KB."""
    try:
        from PIL import Image
    except ImportError:
        return
    img = Image.open(path).convert("RGB")
    for colors in (256, 128, 64):
        img.quantize(colors=colors).save(path, optimize=True)
        if path.stat().st_size < MAX_BYTES:
            return


def screenshot(chromium: str, url: str, path: Path, size: tuple[int, int],
               wait_ms: int) -> None:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
               f"--virtual-time-budget={wait_ms}", f"--screenshot={path}", url]
        subprocess.run(cmd, check=True, capture_output=True, timeout=180)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run_dir", required=True, help="A finished run directory.")
    p.add_argument("--out", default="experiments/results/tensorboard",
                   help="Prefix of the PNGs (default: %(default)s).")
    p.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    p.add_argument("--width", type=int, default=1400)
    p.add_argument("--height", type=int, default=1000)
    p.add_argument("--only", nargs="*", default=list(DASHBOARDS), choices=list(DASHBOARDS),
                   help="Dashboards to capture (default: all).")
    p.add_argument("--wait_ms", type=int, default=20000,
                   help="Virtual time Chromium lets the page load (default: %(default)s).")
    args = p.parse_args(argv)
    if not Path(args.run_dir, "trials.sqlite").is_file():
        print(f"error: {args.run_dir} is not a finished nas_tf run (no trials.sqlite).",
              file=sys.stderr)
        return 2
    if not shutil.which(args.chromium):
        print("error: Chromium not found; install it (apt-get install -y chromium) or pass "
              "--chromium=PATH.", file=sys.stderr)
        return 2
    port = free_port()
    tb = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", f"--logdir={args.run_dir}",
         "--host=127.0.0.1", f"--port={port}", "--reload_interval=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    written = []
    try:
        base = f"http://127.0.0.1:{port}/"
        wait_http(base, 120)
        time.sleep(5)  # let it load the event files
        for name in args.only:
            path = Path(f"{args.out}_{name}.png")
            path.parent.mkdir(parents=True, exist_ok=True)
            screenshot(args.chromium, f"{base}#{DASHBOARDS[name]}", path, (args.width, args.height),
                       args.wait_ms)
            shrink(path)
            written.append(path)
            print(f"{path}  {path.stat().st_size // 1000} KB")
    finally:
        os.killpg(tb.pid, signal.SIGTERM)
        tb.wait(timeout=30)
    return 0 if len(written) == len(args.only) else 1


if __name__ == "__main__":
    sys.exit(main())
