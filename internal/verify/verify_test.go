package verify

import (
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/closurefs/closurefs/closure"
	"github.com/closurefs/closurefs/image"
	"golang.org/x/sys/unix"
)

const (
	baseA = "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a-alpha"
	baseB = "1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b-beta"
	baseC = "2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c-gamma"
	baseD = "3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d-single"
)

// narOf returns the NAR hash and size of dir/base, from `nix-store --dump`
// when it is installed (the reference), else from closure.HashNAR.
func narOf(t *testing.T, dir, base string) ([32]byte, uint64) {
	t.Helper()
	if _, err := exec.LookPath("nix-store"); err == nil {
		out, err := exec.Command("nix-store", "--dump", filepath.Join(dir, base)).Output()
		if err != nil {
			t.Fatalf("nix-store --dump: %v", err)
		}
		return sha256.Sum256(out), uint64(len(out))
	}
	h, n, err := closure.HashNAR(os.DirFS(dir), base)
	if err != nil {
		t.Fatal(err)
	}
	return h, n
}

// makeStore writes a small store of four paths in a temp dir, with store
// conventions (modes, mtime 1), and returns it with its infos.
func makeStore(t *testing.T) (string, []closure.PathInfo) {
	t.Helper()
	dir := t.TempDir()
	write := func(p, data string, mode os.FileMode) {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(baseA+"/bin/hello", "#!/bin/sh\necho hello\n", 0o555)
	write(baseA+"/share/doc/README", strings.Repeat("alpha docs\n", 5000), 0o444)
	if err := os.Symlink("/nix/store/"+baseB+"/lib", filepath.Join(dir, baseA, "lib")); err != nil {
		t.Fatal(err)
	}
	write(baseB+"/lib/libb.so", strings.Repeat("\x7fELF", 3000), 0o555)
	write(baseB+"/lib/empty", "", 0o444)
	write(baseC+"/data", "gamma", 0o444)
	write(baseD, "a single-file store path\n", 0o444)
	// Store conventions: directories 0555, mtime 1.
	epoch := time.Unix(1, 0)
	var dirs []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		tv := []unix.Timeval{unix.NsecToTimeval(epoch.UnixNano()), unix.NsecToTimeval(epoch.UnixNano())}
		if err := unix.Lutimes(p, tv); err != nil {
			t.Fatal(err)
		}
		return nil
	})
	for _, d := range dirs {
		os.Chmod(d, 0o555)
	}
	t.Cleanup(func() {
		for _, d := range dirs {
			os.Chmod(d, 0o755)
		}
	})
	for _, d := range dirs {
		os.Chtimes(d, epoch, epoch)
	}
	var infos []closure.PathInfo
	for _, b := range []string{baseA, baseB, baseC, baseD} {
		h, n := narOf(t, dir, b)
		infos = append(infos, closure.PathInfo{Path: "/nix/store/" + b, NarHash: h, NarSize: n})
	}
	infos[0].References = []string{"/nix/store/" + baseB}
	return dir, infos
}

func check(t *testing.T, fsys image.FS, infos []closure.PathInfo, opt Options) *Report {
	t.Helper()
	rep, err := Check(context.Background(), fsys, infos, opt)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func statusOf(rep *Report, base string) PathResult {
	for _, r := range rep.Paths {
		if filepath.Base(r.Path) == base {
			return r
		}
	}
	return PathResult{}
}

func TestCheckGoodStore(t *testing.T) {
	dir, infos := makeStore(t)
	for _, jobs := range []int{1, 3} {
		rep := check(t, os.DirFS(dir).(image.FS), infos, Options{Jobs: jobs, NoConventions: os.Getuid() != 0})
		if rep.Failed() || rep.OK != len(infos) {
			t.Fatalf("jobs %d: good store failed: %+v", jobs, rep)
		}
		var total uint64
		for _, p := range infos {
			total += p.NarSize
		}
		if rep.NarBytes != total {
			t.Errorf("NarBytes %d, want %d", rep.NarBytes, total)
		}
		if os.Getuid() == 0 && len(rep.Warnings) != 0 {
			t.Errorf("warnings on a conventional store: %+v", rep.Warnings)
		}
	}
}

func TestCheckFindsProblems(t *testing.T) {
	dir, infos := makeStore(t)
	// Mismatch: one byte of a file changed, size kept.
	readme := filepath.Join(dir, baseA, "share/doc/README")
	os.Chmod(filepath.Dir(readme), 0o755)
	data, _ := os.ReadFile(readme)
	data[777] ^= 1
	os.Chmod(readme, 0o644)
	if err := os.WriteFile(readme, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// Missing: C removed. Extra: an unregistered path and a stray file.
	os.Chmod(filepath.Join(dir, baseC), 0o755)
	if err := os.RemoveAll(filepath.Join(dir, baseC)); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f-extra"), 0o555)
	os.WriteFile(filepath.Join(dir, "stray"), nil, 0o444)
	os.WriteFile(filepath.Join(dir, image.RegistrationName), nil, 0o444)
	// An outside reference.
	infos[3].References = []string{"/nix/store/5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f-outside"}
	// A setuid file in B (NAR-neutral: permissions other than x are not in a NAR).
	os.Chmod(filepath.Join(dir, baseB, "lib/libb.so"), 0o555|os.ModeSetuid)

	ref, _ := makeStore(t)
	rep := check(t, os.DirFS(dir).(image.FS), infos, Options{Against: os.DirFS(ref), Ignore: []string{image.RegistrationName}})
	if !rep.Failed() {
		t.Fatal("damaged store passed")
	}
	a := statusOf(rep, baseA)
	if a.Status != StatusMismatch || a.GotHash == "" || a.GotHash == a.WantHash {
		t.Errorf("A: %+v", a)
	}
	if want := "/nix/store/" + baseA + "/share/doc/README: content differs from the reference at byte 777"; a.Detail != want {
		t.Errorf("A detail %q, want %q", a.Detail, want)
	}
	if s := statusOf(rep, baseB).Status; s != StatusOK {
		t.Errorf("B: %v", s)
	}
	if s := statusOf(rep, baseC).Status; s != StatusMissing {
		t.Errorf("C: %v", s)
	}
	wantExtra := []string{"/nix/store/4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f-extra", "stray"}
	if !slices.Equal(rep.Extra, wantExtra) {
		t.Errorf("extra %q, want %q", rep.Extra, wantExtra)
	}
	if len(rep.OutsideRefs) != 1 || rep.OutsideRefs[0].From != infos[3].Path {
		t.Errorf("outside refs %+v", rep.OutsideRefs)
	}
	if rep.OK != 2 || rep.Mismatched != 1 || rep.Missing != 1 || rep.Corrupt != 0 {
		t.Errorf("counts ok %d mismatched %d missing %d corrupt %d", rep.OK, rep.Mismatched, rep.Missing, rep.Corrupt)
	}
	kinds := map[string]string{}
	for _, w := range rep.Warnings {
		kinds[w.Kind] = w.Path
	}
	if kinds["setuid"] != "/nix/store/"+baseB+"/lib/libb.so" {
		t.Errorf("setuid warning missing: %+v", rep.Warnings)
	}
	if kinds["mode"] != "/nix/store/"+baseA+"/share/doc" && kinds["mode"] != readme {
		t.Errorf("mode warning missing: %+v", rep.Warnings)
	}
	if kinds["mtime"] == "" {
		t.Errorf("mtime warning missing: %+v", rep.Warnings)
	}

	// Extra policies.
	rep = check(t, os.DirFS(dir).(image.FS), infos[:2], Options{Extra: ExtraIgnore, NoConventions: true})
	if len(rep.Extra) != 0 || rep.Mismatched != 1 || rep.ExtraFails {
		t.Errorf("ExtraIgnore: extra %q, mismatched %d", rep.Extra, rep.Mismatched)
	}
	fixed := []closure.PathInfo{infos[1]}
	rep = check(t, os.DirFS(dir).(image.FS), fixed, Options{Extra: ExtraWarn, NoConventions: true})
	if rep.Failed() || len(rep.Extra) == 0 {
		t.Errorf("ExtraWarn: failed %v, extra %q", rep.Failed(), rep.Extra)
	}
}

func TestCheckSizeGuard(t *testing.T) {
	dir, infos := makeStore(t)
	infos[0].NarSize = 100 // far smaller than A's files
	rep := check(t, os.DirFS(dir).(image.FS), infos, Options{NoConventions: true})
	a := statusOf(rep, baseA)
	if a.Status != StatusMismatch || !strings.Contains(a.Detail, "more than the registered NAR size") {
		t.Errorf("A: %+v", a)
	}
}

// faultyFS fails or panics when a given file is read.
type faultyFS struct {
	image.FS
	bad   string
	panic bool
}

type faultyFile struct {
	fs.File
	f *faultyFS
}

func (f *faultyFS) Open(name string) (fs.File, error) {
	file, err := f.FS.Open(name)
	if err != nil || name != f.bad {
		return file, err
	}
	return &faultyFile{file, f}, nil
}

func (f *faultyFile) Read(b []byte) (int, error) {
	if f.f.panic {
		var b []byte
		_ = b[len(f.f.bad)] // a reader bug: index out of range
	}
	return 0, errors.New("decompression failed: corrupt block")
}

func TestCheckCorruptGoesOn(t *testing.T) {
	dir, infos := makeStore(t)
	for _, panics := range []bool{false, true} {
		fsys := &faultyFS{FS: os.DirFS(dir).(image.FS), bad: baseB + "/lib/libb.so", panic: panics}
		rep := check(t, fsys, infos, Options{NoConventions: true, Jobs: 2})
		b := statusOf(rep, baseB)
		if b.Status != StatusCorrupt || !strings.Contains(b.Detail, "libb.so") && !panics {
			t.Errorf("panic %v: B %+v", panics, b)
		}
		if panics && !strings.Contains(b.Detail, "panic") {
			t.Errorf("B detail %q", b.Detail)
		}
		if rep.OK != 3 || !rep.Failed() {
			t.Errorf("panic %v: ok %d, failed %v", panics, rep.OK, rep.Failed())
		}
	}
}

func TestCheckCancel(t *testing.T) {
	dir, infos := makeStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Check(ctx, os.DirFS(dir).(image.FS), infos, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled check: %v", err)
	}
}

func TestCheckBadInfos(t *testing.T) {
	dir, infos := makeStore(t)
	infos[1].Path = "/elsewhere/" + baseB
	if _, err := Check(context.Background(), os.DirFS(dir).(image.FS), infos, Options{}); err == nil {
		t.Error("a path outside the store directory was accepted")
	}
}

func TestFirstDiff(t *testing.T) {
	a, _ := makeStore(t)
	b, _ := makeStore(t)
	if d := FirstDiff(os.DirFS(a), os.DirFS(b), baseA, "/nix/store"); d != "" {
		t.Fatalf("identical trees differ: %s", d)
	}
	lib := filepath.Join(b, baseA, "lib")
	os.Chmod(filepath.Dir(lib), 0o755)
	os.Remove(lib)
	os.Symlink("elsewhere", lib)
	want := "/nix/store/" + baseA + `/lib: symlink to "/nix/store/` + baseB + `/lib", the reference to "elsewhere"`
	if d := FirstDiff(os.DirFS(a), os.DirFS(b), baseA, "/nix/store"); d != want {
		t.Errorf("got %q, want %q", d, want)
	}
	os.Remove(lib)
	want = "/nix/store/" + baseA + "/lib: not in the reference"
	if d := FirstDiff(os.DirFS(a), os.DirFS(b), baseA, "/nix/store"); d != want {
		t.Errorf("got %q, want %q", d, want)
	}
	hello := filepath.Join(b, baseA, "bin/hello")
	os.Chmod(hello, 0o444)
	os.Symlink("x", lib)
	os.Remove(lib)
	if d := FirstDiff(os.DirFS(b), os.DirFS(a), baseA, "/nix/store"); !strings.Contains(d, "bin/hello: executable false") {
		t.Errorf("got %q", d)
	}
}
