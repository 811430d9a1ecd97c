package integration_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/closurefs/closurefs/closure"
	"github.com/closurefs/closurefs/integration/fixture"
)

// clBuild builds the closurefs binary into a temporary directory.
func clBuild(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "closurefs")
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/closurefs")
	cmd.Dir = filepath.Dir(filepath.Dir(file))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// clRun runs the binary and returns stdout, stderr and the exit code.
func clRun(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// clClosureInfo builds nixpkgs' closureInfo for root with real Nix: a
// structured-attrs derivation running closure-info.nix's jq commands.
func clClosureInfo(t *testing.T, root string) string {
	t.Helper()
	jq, err := exec.LookPath("jq")
	if err != nil {
		t.Skip("jq not installed (apt install jq): cannot build the reference closureInfo")
	}
	script := `source .attrs.sh; out=${outputs[out]}; /bin/mkdir $out
J=.attrs.json
` + jq + ` -r ".closure | map(.narSize) | add" < $J > $out/total-nar-size
` + jq + ` -r '.closure | map([.path, .narHash, .narSize, "", (.references | length)] + .references) | add | map("\(.)\n") | add' < $J | /usr/bin/head -n -1 > $out/registration
` + jq + ` -r '.closure[].path' < $J > $out/store-paths
`
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "builder.sh"), []byte(script), 0o644)
	expr := `derivation {
  name = "closurefs-test-closure-info";
  system = builtins.currentSystem;
  builder = "/bin/bash";
  args = [ ./builder.sh ];
  __structuredAttrs = true;
  exportReferencesGraph.closure = [ (builtins.storePath "` + root + `") ];
}`
	file := filepath.Join(dir, "default.nix")
	os.WriteFile(file, []byte(expr), 0o644)
	out := clNix(t, "nix-build", file, "--no-out-link", "--option", "sandbox", "false",
		"--option", "substituters", "", "--option", "build-users-group", "")
	return strings.TrimSpace(string(out))
}

func TestClosureCLI(t *testing.T) {
	f := fixture.Get(t)
	bin := clBuild(t)

	t.Run("closureInfo", func(t *testing.T) {
		for _, root := range []string{f.Root, f.Named["dag-top"]} {
			ref := clClosureInfo(t, root)
			dir := filepath.Join(t.TempDir(), "info")
			if _, stderr, code := clRun(t, bin, "closure", "-q", "-o", dir, root); code != 0 {
				t.Fatalf("closure -o: exit %d: %s", code, stderr)
			}
			for _, name := range []string{"registration", "store-paths", "total-nar-size"} {
				want, _ := os.ReadFile(filepath.Join(ref, name))
				got, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s of %s differs from closureInfo's (%d vs %d bytes): %v", name, root, len(got), len(want), err)
				}
				stdout, _, _ := clRun(t, bin, "closure", "--format", name, root)
				if name != "total-nar-size" && stdout != string(want) {
					t.Errorf("--format %s of %s differs from closureInfo's", name, root)
				}
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 3 {
				t.Errorf("-o left %d entries, want 3", len(ents))
			}
			// The registration reads back and re-prints unchanged.
			stdout, stderr, code := clRun(t, bin, "closure", "--registration", ref, "--format", "registration")
			if want, _ := os.ReadFile(filepath.Join(ref, "registration")); code != 0 || stdout != string(want) {
				t.Errorf("--registration %s: exit %d %s", ref, code, stderr)
			}
		}
	})

	t.Run("roots through symlinks", func(t *testing.T) {
		dir := t.TempDir()
		link := filepath.Join(dir, "result")
		os.Symlink(f.Named["dag-top"], link)
		link2 := filepath.Join(dir, "profile")
		os.Symlink("result", link2)
		want, _, _ := clRun(t, bin, "closure", f.Named["dag-top"])
		for _, arg := range []string{link, link2, link2 + "/", f.Named["dag-top"] + "/deps"} {
			got, stderr, code := clRun(t, bin, "closure", arg)
			if code != 0 || got != want {
				t.Errorf("closure %s: exit %d, %s", arg, code, stderr)
			}
		}
		// A symlink store path is itself the root, not its target.
		sp := f.Named["symlink-path"]
		got, _, code := clRun(t, bin, "closure", sp)
		wantSP := clLines(clNix(t, "nix-store", "-qR", sp))
		slices.Sort(wantSP)
		if code != 0 || got != strings.Join(wantSP, "\n")+"\n" {
			t.Errorf("closure %s = %q, want %v", sp, got, wantSP)
		}
	})

	t.Run("sources", func(t *testing.T) {
		want, _, _ := clRun(t, bin, "closure", "--format", "registration", f.Root)
		ref := clClosureInfo(t, f.Root)
		attrs := clExportGraph(t, f.Root, true)
		legacy := clExportGraph(t, f.Root, false)
		for _, args := range [][]string{
			{"--scan", f.Root},
			{"--scan", "--read-dir", f.OptStoreDir, f.Root},
			{"--registration", ref},
			{"--registration", filepath.Join(ref, "registration"), f.Root},
			{"--store-paths", filepath.Join(ref, "store-paths")},
			{"--attrs", attrs},
			{"--attrs", legacy, f.Root},
			{"--db", f.DB, "-j", "1", f.Root},
		} {
			got, stderr, code := clRun(t, bin, append([]string{"closure", "--format", "registration"}, args...)...)
			if code != 0 || got != want {
				t.Errorf("closure %v: exit %d, output differs: %s", args, code, stderr)
			}
		}
	})

	t.Run("snapshot sources", func(t *testing.T) {
		// Every source gives the image the database gives, byte for byte:
		// the same closure.
		dir := t.TempDir()
		root := f.Named["dag-top"]
		ref := clClosureInfo(t, root)
		snap := func(args ...string) []byte {
			img := filepath.Join(dir, "img")
			if _, stderr, code := clRun(t, bin, append([]string{"snapshot", "-q", "-t", "squashfs", "-o", img}, args...)...); code != 0 {
				t.Fatalf("snapshot %v: exit %d: %s", args, code, stderr)
			}
			b, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		// -c is -z for erofs.
		if got, want := snap("-t", "erofs", "-c", "zstd,3", root), snap("-t", "erofs", "-z", "zstd,3", root); !bytes.Equal(got, want) {
			t.Errorf("snapshot -c zstd,3 differs from -z zstd,3")
		}
		want := snap(root)
		for _, args := range [][]string{
			{"--store-paths", filepath.Join(ref, "store-paths"), root},
			{"--store-paths", filepath.Join(ref, "store-paths")},
			{"--registration", ref},
			{"--scan", root},
		} {
			if got := snap(args...); !bytes.Equal(got, want) {
				t.Errorf("snapshot %v differs from snapshot of %s from the database", args, root)
			}
		}
	})

	t.Run("why", func(t *testing.T) {
		top := f.Named["dag-top"]
		to := f.Named["dag-00"]
		out, stderr, code := clRun(t, bin, "why", top, to)
		if code != 0 {
			t.Fatalf("why: exit %d %s", code, stderr)
		}
		chain := clLines([]byte(out))
		if len(chain) < 2 || chain[0] != top || chain[len(chain)-1] != to {
			t.Fatalf("why chain %v", chain)
		}
		// Each step is a real reference according to Nix.
		for i := 0; i+1 < len(chain); i++ {
			refs := clLines(clNix(t, "nix-store", "-q", "--references", chain[i]))
			if !slices.Contains(refs, chain[i+1]) {
				t.Errorf("why: %s does not refer to %s", chain[i], chain[i+1])
			}
		}
		if _, _, code := clRun(t, bin, "why", to, top); code != 1 {
			t.Errorf("why with no chain: exit %d, want 1", code)
		}
	})

	t.Run("nar-hash", func(t *testing.T) {
		paths := []string{f.Named["odd-names"], f.Named["symlink-path"], f.Named["single-file-empty"], f.Named["name-latin1"]}
		want := string(clNix(t, "nix-hash", append([]string{"--type", "sha256", "--base32"}, paths...)...))
		got, stderr, code := clRun(t, bin, append([]string{"nar-hash"}, paths...)...)
		if code != 0 || got != want {
			t.Errorf("nar-hash: exit %d %s\n%s\nwant\n%s", code, stderr, got, want)
		}
		want16 := string(clNix(t, "nix-hash", append([]string{"--type", "sha256"}, paths...)...))
		if got, _, _ := clRun(t, bin, append([]string{"nar-hash", "--base16"}, paths...)...); got != want16 {
			t.Errorf("nar-hash --base16 differs from nix-hash")
		}
		// A trailing slash names the directory a symlink leads to, as
		// for nix-hash (and the kernel): result/ is the output.
		link := filepath.Join(t.TempDir(), "result")
		os.Symlink(f.Named["odd-names"], link)
		for _, arg := range []string{link + "/", link + "/.", link} {
			want := string(clNix(t, "nix-hash", "--type", "sha256", "--base32", arg))
			if got, stderr, code := clRun(t, bin, "nar-hash", arg); code != 0 || got != want {
				t.Errorf("nar-hash %s = %q (exit %d %s), nix-hash says %q", arg, got, code, stderr, want)
			}
		}
		// nix-hash 2.8 has no --sri: encode its base16 digest as SRI.
		digest, _ := hex.DecodeString(strings.Fields(want16)[0])
		sri := "sha256-" + base64.StdEncoding.EncodeToString(digest) + "\n"
		if got, _, _ := clRun(t, bin, "nar-hash", "--sri", paths[0]); got != sri {
			t.Errorf("nar-hash --sri = %q, nix-hash says %q", got, sri)
		}
	})

	t.Run("errors", func(t *testing.T) {
		dir := t.TempDir()
		bad := filepath.Join(dir, "registration")
		os.WriteFile(bad, []byte(f.Root+"\nsha256:zzz\n1\n\n0\n"), 0o644)
		empty := filepath.Join(dir, "empty")
		os.WriteFile(empty, nil, 0o644)
		// A store-paths file must hold a whole closure that has the roots.
		top, leaf := f.Named["dag-top"], f.Named["dag-00"]
		onlyLeaf := filepath.Join(dir, "only-leaf")
		os.WriteFile(onlyLeaf, []byte(leaf+"\n"), 0o644)
		onlyTop := filepath.Join(dir, "only-top")
		os.WriteFile(onlyTop, []byte(top+"\n"), 0o644)
		badJSON := filepath.Join(dir, "attrs.json")
		os.WriteFile(badJSON, []byte("{\"closure\": [{\"path\": 1}]}"), 0o644)
		for _, tc := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{"closure"}, 2, "no ROOT"},
			{[]string{"closure", "--format", "xml", f.Root}, 2, "unknown --format"},
			{[]string{"closure", "--scan", "--registration", bad}, 2, "exclusive"},
			{[]string{"closure", "--registration", bad}, 1, bad + ":2: "},
			{[]string{"closure", "--attrs", badJSON}, 1, badJSON + ":1: "},
			{[]string{"closure", "--registration", filepath.Join(dir, "missing")}, 1, "missing"},
			{[]string{"closure", "--db", filepath.Join(dir, "nodb"), f.Root}, 1, "nodb"},
			{[]string{"closure", "/etc/passwd"}, 1, "does not lead into the store"},
			{[]string{"closure", f.StoreDir + "/" + strings.Repeat("0", 32) + "-absent"}, 1, "not a valid path"},
			{[]string{"why", f.Root}, 2, "want ROOT and PATH"},
			{[]string{"nar-hash", "--base16", "--sri", "/etc"}, 2, "exclusive"},
			{[]string{"nar-hash", filepath.Join(dir, "nothing")}, 1, "nothing"},
			{[]string{"nar-hash", "--base32=false", "/etc"}, 2, "--base32=false"},
			{[]string{"closure", "--registration", empty}, 1, empty + ": empty registration"},
			{[]string{"closure", "--store-paths", empty}, 1, empty + ": no store paths"},
			{[]string{"closure", "--store-paths", onlyLeaf, top}, 1, top + " is not in " + onlyLeaf},
			// A path holding the hash of one the file lacks: warned about.
			{[]string{"closure", "--store-paths", onlyTop, "--format", "registration"}, 0, "which " + onlyTop + " lacks"},
			{[]string{"snapshot", "-q", "--store-paths", onlyTop, top, "-o", filepath.Join(dir, "img")}, 0, "which " + onlyTop + " lacks"},
			{[]string{"closure", "-o", filepath.Join(dir, "o"), "--format", "dump-db", f.Root}, 2, "--format"},
			{[]string{"snapshot", "-t", "squashfs", "-z", "lz4", top, "-o", filepath.Join(dir, "img")}, 2, "--compress is for -t erofs"},
			{[]string{"snapshot", "--no-fragments", top, "-o", filepath.Join(dir, "img")}, 2, "--no-fragments is for -t squashfs"},
			{[]string{"snapshot", "-j", "0", top, "-o", filepath.Join(dir, "img")}, 2, "--jobs"},
			{[]string{"snapshot", "-t", "squashfs", "-T", "-1", top, "-o", filepath.Join(dir, "img")}, 2, "-T -1"},
			{[]string{"snapshot", "-t", "squashfs", "-T", "4294967296", top, "-o", filepath.Join(dir, "img")}, 2, "-T 4294967296"},
			{[]string{"snapshot", "--force-uid", "4294967296", top, "-o", filepath.Join(dir, "img")}, 2, "not a 32-bit id"},
			{[]string{"snapshot", "-z", "lz4", "-c", "zstd", top, "-o", filepath.Join(dir, "img")}, 2, "-z or -c"},
			{[]string{"snapshot", top, "-o", "/dev/null"}, 1, "/dev/null: is a device"},
			{[]string{"verify", f.StoreDir, "--registration", empty}, 1, empty + ": empty registration"},
		} {
			_, stderr, code := clRun(t, bin, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.want)
			}
		}
		// A failed -o leaves nothing behind.
		out := filepath.Join(dir, "out")
		if _, _, code := clRun(t, bin, "closure", "--registration", bad, "-o", out); code != 1 {
			t.Errorf("failed -o: exit %d", code)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("failed -o created %s", out)
		}
	})

	t.Run("json", func(t *testing.T) {
		out, _, code := clRun(t, bin, "closure", "--format", "json", f.Root)
		infos, missing, err := closure.ParseAttrs(strings.NewReader(out), "json", f.StoreDir)
		if code != 0 || err != nil || missing || len(infos) != len(f.Paths) {
			t.Fatalf("json output: exit %d, %v", code, err)
		}
		// closureSize is what Nix computes for each path.
		var doc struct {
			Closure []struct {
				Path        string `json:"path"`
				ClosureSize uint64 `json:"closureSize"`
			} `json:"closure"`
		}
		var nixInfos []struct {
			Path        string `json:"path"`
			ClosureSize uint64 `json:"closureSize"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatal(err)
		}
		nixOut := clNix(t, "nix", append([]string{"--extra-experimental-features", "nix-command", "path-info", "--json", "-S"}, f.Paths...)...)
		if err := json.Unmarshal(nixOut, &nixInfos); err != nil || len(nixInfos) != len(doc.Closure) {
			t.Fatalf("nix path-info --json: %d paths, %v", len(nixInfos), err)
		}
		want := map[string]uint64{}
		for _, p := range nixInfos {
			want[p.Path] = p.ClosureSize
		}
		for _, p := range doc.Closure {
			if p.ClosureSize == 0 || p.ClosureSize != want[p.Path] {
				t.Errorf("closureSize of %s = %d, nix path-info says %d", p.Path, p.ClosureSize, want[p.Path])
			}
		}
	})
}
