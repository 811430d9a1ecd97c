package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/closurefs/closurefs/integration/fixture"
)

// vRegisterEnv returns the environment of a fresh Nix state directory (a
// new, empty database) with the store directory still /nix/store, so the
// fixture's paths are the ones registered.
func vRegisterEnv(t *testing.T) []string {
	t.Helper()
	return []string{"NIX_STATE_DIR=" + t.TempDir()}
}

type vRegisterJSON struct {
	Total        int    `json:"total"`
	AlreadyValid int    `json:"alreadyValid"`
	Registered   int    `json:"registered"`
	NarSize      uint64 `json:"registeredNarSize"`
}

func vRegisterRun(t *testing.T, bin string, env []string, args ...string) (*vRegisterJSON, string, int) {
	t.Helper()
	stdout, stderr, code := verifyRun(t, bin, env, append([]string{"register", "--json"}, args...)...)
	if code != 0 {
		return nil, stderr, code
	}
	var r vRegisterJSON
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("register --json output %q: %v", stdout, err)
	}
	return &r, stderr, code
}

// vDbState is what a state dir's Nix database says of paths: the dump of
// the valid ones and the invalid ones, plus the database file's digest.
func vDbState(t *testing.T, env []string, stateDir string, paths []string) string {
	t.Helper()
	invalid := vNixLines(t, env, append([]string{"--check-validity", "--print-invalid"}, paths...)...)
	var valid []string
	for _, p := range paths {
		if !slices.Contains(invalid, p) {
			valid = append(valid, p)
		}
	}
	var b bytes.Buffer
	if len(valid) > 0 {
		b.Write(vNixDumpDB(t, env, valid))
	}
	b.WriteString("invalid:" + strings.Join(invalid, ",") + "\n")
	data, err := os.ReadFile(filepath.Join(stateDir, "db", "db.sqlite"))
	if err == nil {
		b.WriteString("db:" + string(vSha256Hex(data)))
	}
	return b.String()
}

func vSha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	const hexd = "0123456789abcdef"
	out := make([]byte, 64)
	for i, c := range s {
		out[2*i], out[2*i+1] = hexd[c>>4], hexd[c&15]
	}
	return string(out)
}

// TestRegister registers the fixture in a fresh state dir from a fake
// kernel command line, then checks the result with nix-store itself.
func TestRegister(t *testing.T) {
	f := fixture.Get(t)
	bin := verifyTool(t)
	dir := t.TempDir()
	reg := vWriteFile(t, dir, "registration", vNixDumpDB(t, nil, f.Paths))
	cmdline := vWriteFile(t, dir, "cmdline", []byte("BOOT_IMAGE=/boot/bzImage console=ttyS0 init=/nix/store/x/init regInfo="+reg+" quiet\n"))
	env := vRegisterEnv(t)
	stateDir := strings.TrimPrefix(env[0], "NIX_STATE_DIR=")

	if inv := vNixLines(t, env, append([]string{"--check-validity", "--print-invalid"}, f.Paths...)...); len(inv) != len(f.Paths) {
		t.Fatalf("fresh state dir already knows %d paths", len(f.Paths)-len(inv))
	}
	r, stderr, code := vRegisterRun(t, bin, env, "--cmdline", cmdline, "--verify")
	if code != 0 {
		t.Fatalf("register: exit %d: %s", code, stderr)
	}
	if r.Total != len(f.Paths) || r.Registered != len(f.Paths) || r.AlreadyValid != 0 {
		t.Errorf("first run: %+v, want %d registered", r, len(f.Paths))
	}
	// nix-store agrees: every path valid, the closure of the root is the
	// fixture, and the registration dumps back the same (hashes, sizes,
	// references and derivers).
	vNixLines(t, env, append([]string{"--check-validity"}, f.Paths...)...)
	if got := vSortedCopy(vNixLines(t, env, "-qR", f.Root)); !slices.Equal(got, f.Paths) {
		t.Errorf("nix-store -qR in the new DB: %d paths, want %d", len(got), len(f.Paths))
	}
	if got, want := vNixDumpDB(t, env, f.Paths), vNixDumpDB(t, nil, f.Paths); !bytes.Equal(got, want) {
		t.Errorf("nix-store --dump-db differs from the host's")
	}

	// A second run registers nothing and changes nothing.
	before := vDbState(t, env, stateDir, f.Paths)
	r, stderr, code = vRegisterRun(t, bin, env, "--cmdline", cmdline)
	if code != 0 || r.Registered != 0 || r.AlreadyValid != len(f.Paths) {
		t.Errorf("second run: exit %d, %+v: %s", code, r, stderr)
	}
	if after := vDbState(t, env, stateDir, f.Paths); after != before {
		t.Errorf("second run changed the database")
	}
	// The text output reports the counts.
	stdout, _, code := verifyRun(t, bin, env, "register", "--reginfo", reg)
	if want := "registered 0 paths (0 B), " + strconv.Itoa(len(f.Paths)) + " already valid"; code != 0 || !strings.Contains(stdout, want) {
		t.Errorf("text output %q, want %q", stdout, want)
	}
}

func vSortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// TestRegisterPartial registers a sub-closure, then the whole fixture:
// the second run registers only the rest.
func TestRegisterPartial(t *testing.T) {
	f := fixture.Get(t)
	bin := verifyTool(t)
	dir := t.TempDir()
	env := vRegisterEnv(t)
	sub := vClosureOf(t, f.Named["dag-top"])
	regSub := vWriteFile(t, dir, "sub", vNixDumpDB(t, nil, sub))
	regAll := vWriteFile(t, dir, "all", vNixDumpDB(t, nil, f.Paths))
	r, stderr, code := vRegisterRun(t, bin, env, "--reginfo", regSub)
	if code != 0 || r.Registered != len(sub) {
		t.Fatalf("sub-closure: exit %d %+v %s", code, r, stderr)
	}
	// A dry run foretells the real one exactly, and changes nothing.
	stateDir := strings.TrimPrefix(env[0], "NIX_STATE_DIR=")
	before := vDbState(t, env, stateDir, f.Paths)
	dry, stderr, code := vRegisterRun(t, bin, env, "--reginfo", regAll, "--dry-run")
	if code != 0 {
		t.Fatalf("dry run: exit %d %s", code, stderr)
	}
	if after := vDbState(t, env, stateDir, f.Paths); after != before {
		t.Errorf("the dry run changed the database")
	}
	r, stderr, code = vRegisterRun(t, bin, env, "--reginfo", regAll)
	if code != 0 || r.Registered != len(f.Paths)-len(sub) || r.AlreadyValid != len(sub) {
		t.Fatalf("whole fixture after sub-closure: exit %d %+v %s", code, r, stderr)
	}
	if *dry != *r || r.NarSize == 0 {
		t.Errorf("dry run said %+v, the run did %+v", *dry, *r)
	}
	if got := vSortedCopy(vNixLines(t, env, "-qR", f.Root)); !slices.Equal(got, f.Paths) {
		t.Errorf("nix-store -qR after two runs: %d paths, want %d", len(got), len(f.Paths))
	}
}

// TestRegisterErrors checks that every failure is reported clearly and
// leaves the database as it was.
func TestRegisterErrors(t *testing.T) {
	f := fixture.Get(t)
	bin := verifyTool(t)
	dir := t.TempDir()
	env := vRegisterEnv(t)
	stateDir := strings.TrimPrefix(env[0], "NIX_STATE_DIR=")
	sub := vClosureOf(t, f.Named["dag-top"])
	if _, stderr, code := vRegisterRun(t, bin, env, "--reginfo", vWriteFile(t, dir, "sub", vNixDumpDB(t, nil, sub))); code != 0 {
		t.Fatalf("register: %s", stderr)
	}
	before := vDbState(t, env, stateDir, f.Paths)

	good := string(vNixDumpDB(t, nil, f.Paths))
	lines := strings.SplitAfter(good, "\n")
	// Break the registration far from its start: the NAR size of the
	// 30th record becomes "12x".
	broken := slices.Clone(lines)
	rec, at := 0, -1
	for i := 0; i < len(lines); {
		rec++
		if rec == 30 {
			at = i + 2
			break
		}
		n := 0
		for _, c := range strings.TrimSpace(lines[i+4]) {
			n = n*10 + int(c-'0')
		}
		i += 5 + n
	}
	if at < 0 {
		t.Fatalf("fixture has fewer than 30 paths")
	}
	broken[at] = "12x\n"
	brokenReg := vWriteFile(t, dir, "broken", []byte(strings.Join(broken, "")))
	truncReg := vWriteFile(t, dir, "truncated", []byte(strings.Join(lines[:len(lines)-3], "")))
	// A path that is not in the store.
	absent := "/nix/store/00000000000000000000000000000000-absent"
	missingReg := vWriteFile(t, dir, "missing", []byte(good+absent+"\n"+strings.SplitN(lines[1], "\n", 2)[0]+"\n8\n\n0\n"))
	noReg := vWriteFile(t, dir, "cmdline-noreg", []byte("console=ttyS0 quiet\n"))
	fakeNix := filepath.Join(dir, "nix-store-failing")
	os.WriteFile(fakeNix, []byte("#!/bin/sh\ncase \"$1\" in --check-validity) shift 2; for p; do echo \"$p\"; done;; *) cat >/dev/null; echo 'error: disk I/O error' >&2; exit 1;; esac\n"), 0o755)

	// A store whose copy of "sizes" has one byte changed: --verify refuses.
	damaged := vCopyStore(t, f, []string{f.Named["sizes"]})
	victim := filepath.Join(damaged, filepath.Base(f.Named["sizes"]), "pattern-4096")
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	b[100] ^= 1
	if err := os.WriteFile(victim, b, 0o444); err != nil {
		t.Fatal(err)
	}
	sizesReg := vWriteFile(t, dir, "sizes", vNixDumpDB(t, nil, []string{f.Named["sizes"]}))

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"verify fails", []string{"--reginfo", sizesReg, "--store-dir", damaged, "--verify"}, "verification of " + damaged + " failed: 1 mismatched"},
		{"malformed", []string{"--reginfo", brokenReg}, brokenReg + ":" + strconv.Itoa(at+1) + ":"},
		{"truncated", []string{"--reginfo", truncReg}, truncReg + ":"},
		{"unreadable", []string{"--reginfo", filepath.Join(dir, "nope")}, filepath.Join(dir, "nope")},
		{"missing path", []string{"--reginfo", missingReg}, "00000000000000000000000000000000-absent"},
		{"no regInfo", []string{"--cmdline", noReg}, "no regInfo="},
		{"nix-store missing", []string{"--reginfo", vRegPath(dir, t, f), "--nix-store", "/nonexistent/nix-store"}, "nix-store not found"},
		{"load-db fails", []string{"--reginfo", vRegPath(dir, t, f), "--nix-store", fakeNix}, "error: disk I/O error"},
	}
	for _, tt := range tests {
		_, stderr, code := vRegisterRun(t, bin, env, tt.args...)
		if code != 1 || !strings.Contains(stderr, tt.want) {
			t.Errorf("%s: exit %d, stderr %q, want it to contain %q", tt.name, code, stderr, tt.want)
		}
		if after := vDbState(t, env, stateDir, f.Paths); after != before {
			t.Errorf("%s: the database changed", tt.name)
		}
	}
}

// vRegPath writes the fixture's registration once per test dir.
func vRegPath(dir string, t *testing.T, f *fixture.Fixture) string {
	p := filepath.Join(dir, "all")
	if _, err := os.Stat(p); err != nil {
		vWriteFile(t, dir, "all", vNixDumpDB(t, nil, f.Paths))
	}
	return p
}
