"""RFC 6455 conformance: the Autobahn|Testsuite fuzzing-client cases of
families 1-7, 9 and 10 (tests/autobahn_cases.py) against /run/echo."""
import os
import subprocess
import unittest

from harness import HERE, Daemon


class Autobahn(unittest.TestCase):
    def run_cases(self, cases):
        with Daemon("--max-message", "64M", cpu_workers=2) as d:
            p = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "autobahn_cases.py"),
                                "--url", d.url + "/run/echo", "--cases", cases],
                               capture_output=True, timeout=900)
            out = p.stdout.decode()
            self.assertEqual(p.returncode, 0, out[-4000:] + p.stderr.decode()[-2000:])
            self.assertNotIn("FAILED", out)
            self.assertRegex(out, r"\n\d+ passed, 0 failed")
            return out

    def test_families_1_to_7_and_10(self):
        out = self.run_cases("1.*,2.*,3.*,4.*,5.*,6.*,7.*,10.*")
        self.assertIn("249 cases", out)

    def test_family_9_large_messages(self):
        out = self.run_cases("9.*")
        self.assertIn("54 cases", out)


if __name__ == "__main__":
    unittest.main()
