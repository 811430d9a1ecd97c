package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/closurefs/closurefs/integration/fixture"
)

// TestVerifyFixtureStore verifies the fixture in the real store and in the
// optimised store (hard links, .links) against Nix's own registration.
func TestVerifyFixtureStore(t *testing.T) {
	f := fixture.Get(t)
	bin := verifyTool(t)
	reg := vWriteFile(t, t.TempDir(), "registration", vNixDumpDB(t, nil, f.Paths))
	for _, target := range []string{f.StoreDir, f.OptStoreDir} {
		rep, code, stderr := verifyTarget(t, bin, target, "--registration", reg)
		if rep == nil || code != 0 || rep.OK != len(f.Paths) {
			t.Fatalf("verify %s: exit %d: %s\n%s", target, code, vBadPaths(rep), stderr)
		}
		if target == f.StoreDir {
			continue
		}
		// The optimised store holds exactly the fixture (and .links).
		if len(rep.Extra) != 0 {
			t.Errorf("%s: extra %q", target, rep.Extra)
		}
	}
	// A closure-info directory works the same, and the text output ends
	// with the summary line.
	ci := t.TempDir()
	vWriteFile(t, ci, "registration", vNixDumpDB(t, nil, f.Paths))
	stdout, stderr, code := verifyRun(t, bin, nil, "verify", f.StoreDir, "--closure-info", ci, "-j", "1")
	if code != 0 || !strings.Contains(stdout, "OK: "+strconv.Itoa(len(f.Paths))+" paths") {
		t.Errorf("verify --closure-info: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestVerifyFindsDamage damages a copy of part of the fixture in every way
// verify reports.
func TestVerifyFindsDamage(t *testing.T) {
	f := fixture.Get(t)
	bin := verifyTool(t)
	paths := vClosureOf(t, f.Named["dag-top"])
	for _, k := range []string{"sizes", "symlinks", "single-file"} {
		paths = append(paths, f.Named[k])
	}
	reg := vWriteFile(t, t.TempDir(), "registration", vNixDumpDB(t, nil, paths))
	dir := vCopyStore(t, f, paths)
	restoreModes := func() {
		// Store conventions for the copy: files 0444/0555, dirs 0555.
		exec.Command("chmod", "-R", "a-w", dir).Run()
		os.Chmod(dir, 0o755)
	}
	restoreModes()
	if rep, code, stderr := verifyTarget(t, bin, dir, "--registration", reg, "--mtime", "1"); code != 0 || len(rep.Warnings) != 0 {
		t.Fatalf("intact copy: exit %d %s %+v\n%s", code, vBadPaths(rep), rep.Warnings, stderr)
	}
	exec.Command("chmod", "-R", "u+w", dir).Run()

	// One byte flipped in the middle of a file of "sizes".
	sizes := filepath.Join(dir, filepath.Base(f.Named["sizes"]))
	victim := filepath.Join(sizes, "pattern-131073")
	data, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	data[70000] ^= 0x20
	os.WriteFile(victim, data, 0o444)
	// A path removed, an extra one added, a setuid bit.
	single := filepath.Join(dir, filepath.Base(f.Named["single-file"]))
	os.Remove(single)
	os.Mkdir(filepath.Join(dir, "00000000000000000000000000000000-intruder"), 0o555)
	symlinks := filepath.Join(dir, filepath.Base(f.Named["symlinks"]))
	ents, _ := os.ReadDir(symlinks)
	var regular string
	filepath.WalkDir(symlinks, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && regular == "" {
			regular = p
		}
		return nil
	})
	if regular == "" || len(ents) == 0 {
		t.Fatalf("no regular file in %s", symlinks)
	}
	fi, err := os.Stat(regular)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(regular, fi.Mode().Perm()|os.ModeSetuid) // NAR-neutral: same x bit
	restoreModes()

	rep, code, stderr := verifyTarget(t, bin, dir, "--registration", reg, "--against", f.StoreDir)
	if code != 1 || rep == nil {
		t.Fatalf("damaged copy: exit %d\n%s", code, stderr)
	}
	status := map[string]string{}
	detail := map[string]string{}
	for _, p := range rep.Paths {
		status[p.Path] = p.Status
		detail[p.Path] = p.Detail
	}
	if status[f.Named["sizes"]] != "mismatch" {
		t.Errorf("sizes: %s", status[f.Named["sizes"]])
	}
	want := f.Named["sizes"] + "/pattern-131073: content differs from the reference at byte 70000"
	if detail[f.Named["sizes"]] != want {
		t.Errorf("first difference %q, want %q", detail[f.Named["sizes"]], want)
	}
	if status[f.Named["single-file"]] != "missing" {
		t.Errorf("single-file: %s", status[f.Named["single-file"]])
	}
	if rep.OK != len(paths)-2 || rep.Mismatched != 1 || rep.Missing != 1 {
		t.Errorf("counts: ok %d mismatched %d missing %d of %d", rep.OK, rep.Mismatched, rep.Missing, len(paths))
	}
	if len(rep.Extra) != 1 || !strings.HasSuffix(rep.Extra[0], "-intruder") {
		t.Errorf("extra %q", rep.Extra)
	}
	found := false
	for _, w := range rep.Warnings {
		if w.Kind == "setuid" && w.Path == strings.Replace(regular, dir, f.StoreDir, 1) {
			found = true
		}
	}
	if !found {
		t.Errorf("no setuid warning for %s in %+v", regular, rep.Warnings)
	}

	// A malformed registration is an error naming file:line, exit 1.
	bad := []byte(strings.Replace(string(vNixDumpDB(t, nil, paths)), "\n", "\nnot-a-hash\n", 1))
	badReg := vWriteFile(t, t.TempDir(), "bad-registration", bad)
	_, stderr, code = verifyRun(t, bin, nil, "verify", dir, "--registration", badReg)
	if code != 1 || !strings.Contains(stderr, badReg+":2:") {
		t.Errorf("malformed registration: exit %d, %q", code, stderr)
	}
	// Usage errors exit 2.
	if _, _, code := verifyRun(t, bin, nil, "verify"); code != 2 {
		t.Errorf("no TARGET: exit %d", code)
	}
	if _, _, code := verifyRun(t, bin, nil, "verify", dir, "--registration", reg, "--db"); code != 2 {
		t.Errorf("two sources: exit %d", code)
	}
}

// vBadPaths lists the paths of rep that are not ok, for failure messages.
func vBadPaths(rep *verifyJSON) string {
	if rep == nil {
		return "no report"
	}
	var b strings.Builder
	for _, p := range rep.Paths {
		if p.Status != "ok" {
			fmt.Fprintf(&b, "%s %s: %s\n", p.Status, p.Path, p.Detail)
		}
	}
	fmt.Fprintf(&b, "extra %q", rep.Extra)
	return b.String()
}

// TestVerifySources checks the other sources of expected contents: the Nix
// database (--db) and, by default, a closure-info store path in the tree.
func TestVerifySources(t *testing.T) {
	f := fixture.Get(t)
	bin := verifyTool(t)
	// --db: the closure of the store paths in the optimised store, as its
	// own database records it.
	rep, code, stderr := verifyTarget(t, bin, f.OptStoreDir, "--db="+f.OptDB)
	if rep == nil || code != 0 || rep.OK != len(f.Paths) {
		t.Errorf("verify --db: exit %d: %s\n%s", code, vBadPaths(rep), stderr)
	}

	// A tree holding a closure-info store path (as NixOS images do) is
	// verified against it; the closure-info path itself is not extra.
	paths := vClosureOf(t, f.Named["dag-top"])
	dir := vStageStore(t, f, paths, nil)
	ci := filepath.Join(dir, "0123456789abcdfghijklmnpqrsvwxyz-closure-info")
	if err := os.Mkdir(ci, 0o755); err != nil {
		t.Fatal(err)
	}
	vWriteFile(t, ci, "registration", vNixDumpDB(t, nil, paths))
	vWriteFile(t, ci, "store-paths", []byte(strings.Join(paths, "\n")+"\n"))
	rep, code, stderr = verifyTarget(t, bin, dir, "--no-conventions")
	if rep == nil || code != 0 || rep.OK != len(paths) || len(rep.Extra) != 0 {
		t.Errorf("verify with an in-tree closure-info: exit %d: %s\n%s", code, vBadPaths(rep), stderr)
	}
	// Without any registration, a clear error.
	os.RemoveAll(ci)
	_, stderr, code = verifyRun(t, bin, nil, "verify", dir)
	if code != 1 || !strings.Contains(stderr, "holds no registration") {
		t.Errorf("no registration: exit %d, %q", code, stderr)
	}
}
