package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/closurefs/closurefs/image"
	"github.com/closurefs/closurefs/integration/fixture"
)

// vRefImage is a way a reference tool makes an image of a directory.
type vRefImage struct {
	name   string
	fstype string // for mount -t
	tool   string
	// skipNames are fixture keys of store paths left out: odd-names for
	// Debian's mkfs.erofs 1.5, which fails on 255-byte names; big to keep
	// the test fast (the store directory and FUSE view tests verify it).
	// Tool "closurefs" is our own writer (snapshot --dir).
	skipNames []string
	args      func(src, img string) []string
}

var vRefImages = []vRefImage{
	{"mkfs.erofs", "erofs", "mkfs.erofs", []string{"odd-names", "big"}, func(src, img string) []string {
		return []string{"-T0", "--all-root", img, src}
	}},
	{"mkfs.erofs-lz4hc", "erofs", "mkfs.erofs", []string{"odd-names", "big"}, func(src, img string) []string {
		return []string{"-zlz4hc", "-T0", "--all-root", img, src}
	}},
	{"mksquashfs", "squashfs", "mksquashfs", []string{"big"}, func(src, img string) []string {
		return []string{src, img, "-all-root", "-noappend", "-quiet", "-no-progress"}
	}},
	{"closurefs-erofs", "erofs", "closurefs", []string{"big"}, func(src, img string) []string {
		return []string{"snapshot", "-q", "-t", "erofs", "--dir", src, "-o", img}
	}},
	{"closurefs-squashfs", "squashfs", "closurefs", []string{"big"}, func(src, img string) []string {
		return []string{"snapshot", "-q", "-t", "squashfs", "--dir", src, "-o", img}
	}},
	{"gensquashfs-zstd", "squashfs", "gensquashfs", []string{"big"}, func(src, img string) []string {
		return []string{"--pack-dir", src, "-c", "zstd", "-X", "level=3", "--all-root", "-q", "-f", img}
	}},
}

// vMakeRefImage packs the fixture (minus what the tool cannot pack) with
// ri, adding the registration at the image root, and returns the image and
// the store paths in it.
func vMakeRefImage(t *testing.T, f *fixture.Fixture, ri vRefImage, dir, bin string) (string, []string) {
	t.Helper()
	tool := ri.tool
	if tool == "closurefs" {
		tool = bin
		if _, stderr, _ := verifyRun(t, bin, nil, "snapshot", "--help"); strings.Contains(stderr, "unknown") {
			t.Skip("closurefs snapshot not built in")
		}
	} else if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s not installed", tool)
	}
	skip := map[string]bool{}
	for _, k := range ri.skipNames {
		skip[filepath.Base(f.Named[k])] = true
	}
	var paths []string
	for _, p := range f.Paths {
		if !skip[filepath.Base(p)] {
			paths = append(paths, p)
		}
	}
	src := vStageStore(t, f, paths, skip)
	// Without odd-names the fixture root's closure is incomplete, so the
	// registration covers exactly the paths packed (dump-db does not
	// check closure), minus references to the skipped path.
	reg := vNixDumpDB(t, nil, paths)
	for b := range skip {
		reg = vDropReferences(reg, "/nix/store/"+b)
	}
	if err := os.WriteFile(filepath.Join(src, image.RegistrationName), reg, 0o444); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, ri.name+".img")
	out, err := exec.Command(tool, ri.args(src, img)...).CombinedOutput()
	if err != nil && ri.tool == "closurefs" && strings.Contains(string(out), "unknown image format") {
		t.Skipf("closurefs snapshot cannot write %s yet: %s", ri.fstype, out)
	}
	if err != nil {
		t.Fatalf("%s: %v\n%s", ri.tool, err, out)
	}
	return img, paths
}

// vDropReferences removes the reference lines naming p from a registration
// and fixes the counts.
func vDropReferences(reg []byte, p string) []byte {
	lines := strings.Split(strings.TrimSuffix(string(reg), "\n"), "\n")
	var out []string
	for i := 0; i < len(lines); {
		head := lines[i : i+4]
		n := 0
		for _, c := range lines[i+4] {
			n = n*10 + int(c-'0')
		}
		var refs []string
		for _, r := range lines[i+5 : i+5+n] {
			if r != p {
				refs = append(refs, r)
			}
		}
		out = append(out, head...)
		out = append(out, strconv.Itoa(len(refs)))
		out = append(out, refs...)
		i += 5 + n
	}
	return []byte(strings.Join(out, "\n") + "\n")
}

// vMountImage mounts img read-only through a loop device and returns the
// mount point, unmounted at cleanup.
func vMountImage(t *testing.T, img, fstype string) string {
	t.Helper()
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", fstype, "-o", "loop,ro", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount %s (%v): %s", fstype, err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	return mnt
}

// TestVerifyReferenceImages verifies images that mkfs.erofs, mksquashfs and
// gensquashfs make of the fixture: mounted by the kernel and, when the
// readers are built in, as image files. The registration comes from the
// image itself.
func TestVerifyReferenceImages(t *testing.T) {
	f := fixture.Get(t)
	vNeedRoot(t)
	bin := verifyTool(t)
	dir := t.TempDir()
	for _, ri := range vRefImages {
		t.Run(ri.name, func(t *testing.T) {
			img, paths := vMakeRefImage(t, f, ri, dir, bin)
			mnt := vMountImage(t, img, ri.fstype)
			targets := []string{mnt}
			if vImageFilesSupported(t, bin, img) {
				targets = append(targets, img)
				// Our FUSE mount of the image, when FUSE works here.
				if os.Geteuid() == 0 && fileExists("/dev/fuse") {
					fmnt := fuseStartImage(t, img, ri.fstype)
					targets = append(targets, fmnt)
				} else {
					t.Log("FUSE unavailable: image not verified through closurefs mount-image")
				}
			}
			for _, target := range targets {
				rep, code, stderr := verifyTarget(t, bin, target)
				if rep == nil || code != 0 || rep.OK != len(paths) || len(rep.Extra) != 0 {
					t.Errorf("verify %s (%s): exit %d: %s\n%s", target, ri.name, code, vBadPaths(rep), stderr)
				}
				if rep != nil && len(rep.Warnings) != 0 {
					t.Errorf("verify %s: warnings on a conventional image: %+v", target, rep.Warnings)
				}
			}
		})
	}
}

// vImageFilesSupported reports whether the binary reads image files (the
// erofs and squashfs readers are built in), logging when not.
func vImageFilesSupported(t *testing.T, bin, img string) bool {
	_, stderr, _ := verifyRun(t, bin, nil, "verify", img, "-q")
	if strings.Contains(stderr, "not built in yet") || strings.Contains(stderr, "not a recognised image") {
		t.Logf("image files not verified directly: %s", strings.TrimSpace(stderr))
		return false
	}
	return true
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestVerifyFuseView verifies the FUSE closure view (closurefs mount) of
// the whole fixture, odd names included, against Nix's registration.
func TestVerifyFuseView(t *testing.T) {
	f := fixture.Get(t)
	fuseNeed(t)
	bin := verifyTool(t)
	reg := vWriteFile(t, t.TempDir(), "registration", vNixDumpDB(t, nil, f.Paths))
	mnt := t.TempDir()
	fuseStart(t, mnt, "mount", f.Root, mnt)
	rep, code, stderr := verifyTarget(t, bin, mnt, "--registration", reg)
	if rep == nil || code != 0 || rep.OK != len(f.Paths) || len(rep.Extra) != 0 {
		t.Errorf("verify of the FUSE closure view: exit %d: %s\n%s", code, vBadPaths(rep), stderr)
	}
}

// TestVerifyOutsideRefs verifies an image of a closure against the
// registration of its top path alone (nix-store --dump-db of it): the
// top's references are reported as references outside the set, the
// other paths as extra.
func TestVerifyOutsideRefs(t *testing.T) {
	f := fixture.Get(t)
	bin := verifyTool(t)
	dir := t.TempDir()
	top := f.Named["dag-top"]
	paths := vClosureOf(t, top)
	refs := vNixLines(t, nil, "-q", "--references", top)
	img := filepath.Join(dir, "img")
	if _, stderr, code := verifyRun(t, bin, nil, "snapshot", "-q", "-t", "squashfs", top, "-o", img); code != 0 {
		t.Fatalf("snapshot: exit %d: %s", code, stderr)
	}
	reg := vWriteFile(t, dir, "top-only", vNixDumpDB(t, nil, []string{top}))
	rep, code, stderr := verifyTarget(t, bin, img, "--registration", reg)
	if rep == nil || code != 1 || rep.OK != 1 || len(rep.Extra) != len(paths)-1 {
		t.Fatalf("verify against the top alone: exit %d, %+v: %s", code, rep, stderr)
	}
	var to []string
	for _, r := range rep.OutsideRefs {
		if r.From != top {
			t.Errorf("outside reference from %s", r.From)
		}
		to = append(to, r.To)
	}
	var want []string
	for _, r := range refs {
		if r != top {
			want = append(want, r)
		}
	}
	slices.Sort(to)
	slices.Sort(want)
	if !slices.Equal(to, want) {
		t.Errorf("outside references %v, want %v (nix-store -q --references)", to, want)
	}
}
