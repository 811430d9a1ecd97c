package erofs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/closurefs/closurefs/closure"
	"github.com/closurefs/closurefs/integration/fixture"
)

// TestReadFixtureNARHashes makes images of the shared fixture's store with
// mkfs.erofs and checks that the NAR hash of every store path, read back
// through the reader, equals the hash Nix registered for it.
func TestReadFixtureNARHashes(t *testing.T) {
	if testing.Short() {
		t.Skip("fixture build skipped in -short mode")
	}
	deb, err := exec.LookPath("mkfs.erofs")
	if err != nil {
		t.Skip("mkfs.erofs not installed")
	}
	f := fixture.Get(t)
	out, err := exec.Command("nix-store", append([]string{"-q", "--hash"}, f.Paths...)...).Output()
	if err != nil {
		t.Fatalf("nix-store -q --hash: %v", err)
	}
	hashes := strings.Fields(string(out))
	if len(hashes) != len(f.Paths) {
		t.Fatalf("nix-store gave %d hashes for %d paths", len(hashes), len(f.Paths))
	}
	// Debian's mkfs.erofs 1.5 cannot store a 255-byte name: leave out the
	// store path holding it there.
	var debExclude []string
	skipDeb := map[string]bool{}
	if p := f.Named["name-255"]; p != "" {
		for _, sp := range f.Paths {
			if strings.HasPrefix(p, sp+"/") {
				skipDeb[filepath.Base(sp)] = true
				debExclude = append(debExclude, "--exclude-path="+filepath.Base(sp))
			}
		}
	}
	type imgCase struct {
		name string
		bin  string
		args []string
		skip map[string]bool
	}
	cases := []imgCase{{"debian-lz4-ztailpacking", deb, append([]string{"-zlz4", "-Eztailpacking"}, debExclude...), skipDeb}}
	// A newer mkfs.erofs (erofs-utils >= 1.8, see scripts/bench-erofs.sh)
	// writes the features Debian's 1.5 lacks.
	nb := newMkfs()
	if nb != "" {
		feats := newMkfsFeatures(nb)
		add := func(name string, need string, args ...string) {
			if need != "" && !feats[need] {
				t.Logf("%s: %s has no -E%s", name, nb, need)
				return
			}
			cases = append(cases, imgCase{name, nb, append(args, "--all-root"), nil})
		}
		add("lz4-ztailpacking-fragments-64k", "", "-zlz4", "-Eztailpacking", "-Efragments", "-C65536")
		add("microvm-lz4hc-ztailpacking-fragments", "", "-zlz4hc", "-Eztailpacking", "-Efragments")
		add("zstd-ztailpacking-fragments", "", "-zzstd", "-Eztailpacking", "-Efragments")
		add("deflate-16k", "", "-zdeflate", "-C16384")
		add("lz4-dedupe-64k", "dedupe", "-zlz4", "-Ededupe", "-C65536")
		add("lz4-all-fragments", "all-fragments", "-zlz4", "-Eall-fragments")
		add("48bit-lz4", "48bit", "-zlz4", "-E48bit")
		add("chunked-dedupe", "", "--chunksize=16384", "-Ededupe")
	} else {
		t.Log("no newer mkfs.erofs at /tmp/mkfs.erofs-new or $EROFS_MKFS_NEW: zstd, deflate, fragments, dedupe and 48-bit images not tested")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"--exclude-path=.links"}, c.args...)
			img := rdMkfs(t, c.bin, f.OptStoreDir, args...)
			rd := rdOpenImage(t, img)
			checked := 0
			for i, p := range f.Paths {
				name := filepath.Base(p)
				if c.skip[name] {
					continue
				}
				d, _, err := closure.HashNAR(rd, name)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				if got := closure.FormatHash(d, closure.HashBase32, true); got != hashes[i] {
					t.Errorf("%s: NAR hash %s, Nix has %s", name, got, hashes[i])
				}
				checked++
			}
			t.Logf("%d store paths hash as Nix registered them", checked)
			if checked < len(f.Paths)-len(c.skip) {
				t.Errorf("checked %d of %d paths", checked, len(f.Paths))
			}
		})
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// newErofsTool returns the path of a newer erofs-utils tool (mkfs.erofs,
// fsck.erofs): $env if set, else /tmp/NAME-new or /tmp/NAME if present
// (where scripts/bench-erofs.sh's instructions put them), else "".
func newErofsTool(env, name string) string {
	if p := os.Getenv(env); p != "" {
		return p
	}
	for _, p := range []string{"/tmp/" + name + "-new", "/tmp/" + name} {
		if fileExists(p) {
			return p
		}
	}
	return ""
}

func newMkfs() string { return newErofsTool("EROFS_MKFS_NEW", "mkfs.erofs") }
func newFsck() string { return newErofsTool("EROFS_FSCK_NEW", "fsck.erofs") }

// newMkfsFeatures returns the -E options mkfs.erofs at bin knows, by
// trying each on an empty directory.
func newMkfsFeatures(bin string) map[string]bool {
	dir, err := os.MkdirTemp("", "mkfs-feat")
	if err != nil {
		return nil
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "src")
	if os.Mkdir(src, 0o755) != nil {
		return nil
	}
	have := map[string]bool{}
	for _, f := range []string{"dedupe", "all-fragments", "48bit"} {
		err := exec.Command(bin, "-zlz4", "-E"+f, "-d0", filepath.Join(dir, "img"), src).Run()
		have[f] = err == nil
	}
	return have
}
