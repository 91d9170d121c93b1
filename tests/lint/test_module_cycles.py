"""Self-test of module_cycles.py on small crates made here: it must catch each kind of circle."""
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

SCRIPT = Path(__file__).with_name("module_cycles.py")


def run(files: dict[str, str]) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as d:
        crate = Path(d) / "demo"
        for name, text in files.items():
            path = crate / "src" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return subprocess.run([sys.executable, SCRIPT, crate], capture_output=True, text=True)


class ModuleCycles(unittest.TestCase):
    def test_layered_modules_pass(self):
        r = run({"lib.rs": "mod a; mod b;", "a.rs": "use crate::b::B;", "b.rs": "pub struct B;"})
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("0 circles", r.stdout)

    def test_sibling_pair_is_a_circle(self):
        r = run({"lib.rs": "mod a; mod b;", "a.rs": "use crate::b::B;\npub struct A;",
                 "b.rs": "use crate::a::A;\npub struct B;"})
        self.assertEqual(r.returncode, 1)
        self.assertIn("circle among a, b", r.stdout)

    def test_child_using_its_parent_that_uses_it(self):
        r = run({"lib.rs": "mod p;", "p/mod.rs": "mod c;\npub use c::C;\npub struct P;",
                 "p/c.rs": "use super::P;\npub struct C;"})
        self.assertEqual(r.returncode, 1)
        self.assertIn("circle among p, p::c", r.stdout)

    def test_longer_circle_through_grouped_use_and_inline_paths(self):
        r = run({"lib.rs": "mod a; mod b; mod c;", "a.rs": "use crate::{b::B};",
                 "b.rs": "fn f() { crate::c::g() }", "c.rs": "pub fn g() { let _ = crate::a::A; }"})
        self.assertEqual(r.returncode, 1)
        self.assertIn("circle among a, b, c", r.stdout)

    def test_unit_tests_and_comments_do_not_count(self):
        r = run({"lib.rs": "mod a; mod b;", "a.rs": "use crate::b::B; // crate::b",
                 "b.rs": "pub struct B;\n// use crate::a::A;\n#[cfg(test)]\nmod tests { use crate::a::*; }"})
        self.assertEqual(r.returncode, 0, r.stdout)


if __name__ == "__main__":
    unittest.main()
