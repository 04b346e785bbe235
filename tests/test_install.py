"""make install, and dropping privileges with --user."""
import os
import pwd
import subprocess
import tempfile
import unittest

from harness import BUILD, ROOT, Daemon


class Install(unittest.TestCase):
    def test_make_install_puts_everything_under_destdir(self):
        with tempfile.TemporaryDirectory() as dest:
            p = subprocess.run(["make", "-s", "install", "BUILD=" + BUILD, "PREFIX=/usr/local",
                                "DESTDIR=" + dest], cwd=ROOT, capture_output=True, timeout=300)
            self.assertEqual(p.returncode, 0, p.stderr)
            root = dest + "/usr/local"
            for f in ("bin/wsjobd", "bin/wsjob", "include/wsjob.h", "share/man/man8/wsjobd.8",
                      "share/man/man5/wsjobd.conf.5", "share/man/man1/wsjob.1",
                      "share/man/man3/wsjob-handler.3", "lib/systemd/system/wsjobd.service",
                      "lib/systemd/system/wsjobd.socket", "lib/systemd/system/wsjobd@.service"):
                self.assertTrue(os.path.exists(os.path.join(root, f)), f)
            self.assertTrue(os.access(root + "/bin/wsjobd", os.X_OK))
            with open(root + "/lib/systemd/system/wsjobd.service") as f:
                self.assertIn("ExecStart=/usr/local/bin/wsjobd ", f.read())
            with open(root + "/lib/systemd/system/wsjobd@.service") as f:
                self.assertIn("ExecStart=/usr/local/bin/wsjobd --config /etc/wsjobd/%i.conf", f.read())


class DropPrivileges(unittest.TestCase):
    def test_user_option_drops_root_after_binding(self):
        nobody = pwd.getpwnam("nobody")
        with Daemon("--user", "nobody") as d:
            with open("/proc/%d/status" % d.proc.pid) as f:
                uid_line = [l for l in f if l.startswith("Uid:")][0].split()
            want = nobody.pw_uid if os.getuid() == 0 else os.getuid()
            self.assertEqual(int(uid_line[1]), want)   # real
            self.assertEqual(int(uid_line[2]), want)   # effective
            self.assertEqual(d.http("/healthz")[0], 200)


if __name__ == "__main__":
    unittest.main()
