package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/closurefs/closurefs/integration/fixture"
)

// verifyTool builds the closurefs binary into a temp dir of t.
func verifyTool(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "closurefs")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/closurefs/closurefs/cmd/closurefs").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// verifyRun runs closurefs with args and env additions, returning stdout,
// stderr and the exit code.
func verifyRun(t *testing.T, bin string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("closurefs %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

// verifyJSON is the part of `closurefs verify --json` the tests read.
type verifyJSON struct {
	Passed bool `json:"passed"`
	Paths  []struct {
		Path   string `json:"path"`
		Status string `json:"status"`
		Detail string `json:"detail"`
	} `json:"paths"`
	Extra      []string `json:"extra"`
	OK         int      `json:"ok"`
	Mismatched int      `json:"mismatched"`
	Missing    int      `json:"missing"`
	Corrupt    int      `json:"corrupt"`
	Warnings   []struct {
		Path string `json:"path"`
		Kind string `json:"kind"`
	} `json:"warnings"`
	OutsideRefs []struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"outsideRefs"`
}

// verifyTarget runs `closurefs verify --json TARGET args...` and decodes
// the report; it fails the test on exit status 2 or undecodable output.
func verifyTarget(t *testing.T, bin, target string, args ...string) (*verifyJSON, int, string) {
	t.Helper()
	stdout, stderr, code := verifyRun(t, bin, nil, append([]string{"verify", "--json", target}, args...)...)
	if code == 2 {
		t.Fatalf("verify %s: usage error: %s", target, stderr)
	}
	var rep verifyJSON
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		return nil, code, stderr
	}
	if rep.Passed != (code == 0) {
		t.Errorf("verify %s: passed=%v but exit %d", target, rep.Passed, code)
	}
	return &rep, code, stderr
}

// vNixDumpDB returns `nix-store --dump-db` of paths: a registration made by
// Nix itself from its database, the reference the tests verify against.
func vNixDumpDB(t *testing.T, env []string, paths []string) []byte {
	t.Helper()
	cmd := exec.Command("nix-store", append([]string{"--dump-db"}, paths...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix-store --dump-db: %v: %s", err, stderr.String())
	}
	return out
}

// vNixLines runs nix-store and returns its output lines.
func vNixLines(t *testing.T, env []string, args ...string) []string {
	t.Helper()
	cmd := exec.Command("nix-store", args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix-store %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.Fields(string(out))
}

// vClosureOf returns the closure of root as Nix computes it.
func vClosureOf(t *testing.T, root string) []string {
	t.Helper()
	return vNixLines(t, nil, "-qR", root)
}

// vWriteFile writes data to a new file in dir and returns its name.
func vWriteFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// vStageStore makes a directory holding the given store paths by base
// name, hard-linked from the physical store of f (fast, no data copied),
// leaving out the base names in skip.
func vStageStore(t *testing.T, f *fixture.Fixture, paths []string, skip map[string]bool) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range paths {
		b := filepath.Base(p)
		if skip[b] {
			continue
		}
		if out, err := exec.Command("cp", "-a", "--link", f.Physical(p), filepath.Join(dir, b)).CombinedOutput(); err != nil {
			t.Fatalf("cp -al %s: %v\n%s", p, err, out)
		}
	}
	return dir
}

// vCopyStore is vStageStore with real copies, for trees the test changes.
func vCopyStore(t *testing.T, f *fixture.Fixture, paths []string) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range paths {
		if out, err := exec.Command("cp", "-a", f.Physical(p), filepath.Join(dir, filepath.Base(p))).CombinedOutput(); err != nil {
			t.Fatalf("cp -a %s: %v\n%s", p, err, out)
		}
	}
	// The copies are read-only like the store; let the test (and the
	// temp dir cleanup) change them.
	exec.Command("chmod", "-R", "u+w", dir).Run()
	return dir
}

func vNeedRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root (loop mounts)")
	}
}
