#!/usr/bin/env python3
"""Every man page is mandoc -Tlint clean."""

import glob
import os
import subprocess
from kvmidtest import Tap, skip_all

mandoc = os.environ.get("MANDOC", "no")
if mandoc in ("", "no"):
    skip_all("mandoc not found (apt-get install -y mandoc)")
t = Tap()
pages = sorted(glob.glob(os.path.join(os.environ["top_srcdir"], "man", "*.[0-9]")))
t.ok(len(pages) >= 3, "man pages present")
for page in pages:
    p = subprocess.run([mandoc, "-Tlint", "-W", "warning", page], capture_output=True, text=True)
    t.ok(p.stdout == "" and p.stderr == "", "mandoc -Tlint %s" % os.path.basename(page), p.stdout + p.stderr)
t.done()
