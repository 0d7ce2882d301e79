#!/usr/bin/env python3
"""Every man page is mandoc -Tlint clean, the program pages have the
sections an operator looks for, and every kvmictl verb and option that
--help lists is documented in kvmictl(1)."""

import glob
import os
import re
import subprocess
from kvmidtest import Tap, skip_all

mandoc = os.environ.get("MANDOC", "no")
if mandoc in ("", "no"):
    skip_all("mandoc not found (apt-get install -y mandoc)")
t = Tap()
man = os.path.join(os.environ["top_srcdir"], "man")
pages = sorted(glob.glob(os.path.join(man, "*.[0-9]")))
t.ok(len(pages) >= 3, "man pages present")
for page in pages:
    p = subprocess.run([mandoc, "-Tlint", "-W", "warning", page], capture_output=True, text=True)
    t.ok(p.stdout == "" and p.stderr == "", "mandoc -Tlint %s" % os.path.basename(page), p.stdout + p.stderr)


def text(page):
    with open(os.path.join(man, page)) as f:
        return f.read()


REQUIRED = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "FILES", "EXIT STATUS", "EXAMPLES", "SEE ALSO"]
for page in ("kvmid.8", "kvmictl.1", "kvmid.conf.5"):
    have = re.findall(r"^\.SH (.+)$", text(page), re.M)
    t.eq([s for s in have if s in REQUIRED], REQUIRED, "%s has %s, in that order" % (page, "/".join(REQUIRED)))

# What kvmictl --help offers, kvmictl(1) explains.
kvmictl = os.environ.get("KVMICTL")
if kvmictl and os.access(kvmictl, os.X_OK):
    out = subprocess.run([kvmictl, "--help"], capture_output=True, text=True).stdout
    page = text("kvmictl.1").replace("\\-", "-")
    verbs = re.findall(r"^  ([a-z]+)\b", out.split("Options:")[0], re.M)
    t.ok(len(verbs) >= 10, "kvmictl --help lists its verbs (%d)" % len(verbs), out)
    t.ok(all(re.search(r"^\.B[R ]*\"?%s\b" % v, page, re.M) for v in verbs),
         "every verb of kvmictl --help is in kvmictl(1)",
         [v for v in verbs if not re.search(r"^\.B[R ]*\"?%s\b" % v, page, re.M)])
    opts = re.findall(r"(--[a-z][a-z-]+)", out.split("Options:")[1])
    t.ok(all(o in page for o in opts), "every option of kvmictl --help is in kvmictl(1)",
         [o for o in opts if o not in page])
else:
    t.skip("kvmictl --help against kvmictl(1)", "KVMICTL not set")
t.done()
