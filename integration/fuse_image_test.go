package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/closurefs/closurefs/integration/fixture"
	"github.com/closurefs/closurefs/internal/treetest"
	"golang.org/x/sys/unix"
)

// fuseStage links the store paths of the fixture's closure into a fresh
// directory (mkfs.erofs takes one source directory), leaving out those
// whose name contains exclude.
func fuseStage(t testing.TB, f *fixture.Fixture, exclude string) string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"-al", "--"} // hard links: the store is on the same file system, or cp copies
	for _, p := range f.Paths {
		if exclude == "" || !strings.Contains(p, exclude) {
			args = append(args, p)
		}
	}
	fuseRun(t, "", "cp", append(args, dir+"/")...)
	return dir
}

// fuseKernelMount loop-mounts img read-only with the kernel driver.
func fuseKernelMount(t testing.TB, img, fstype string) string {
	t.Helper()
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", fstype, "-o", "ro,loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot loop-mount %s with the kernel: %v: %s", fstype, err, out)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	return mnt
}

// fuseNeedReader skips t if this build cannot read img.
func fuseNeedReader(t testing.TB, img, fstype string) {
	t.Helper()
	out, _ := exec.Command(fuseBin(t), "mount-image", img, "/nonexistent/mnt").CombinedOutput()
	if _, known, ok := strings.Cut(string(out), "not a recognised image (known formats: "); ok && !strings.Contains(known, fstype) {
		t.Skipf("no %s reader in this build: %s", fstype, out)
	}
}

// fuseStartImage runs closurefs mount-image, skipping the test if this
// build has no reader for the format yet.
func fuseStartImage(t testing.TB, img, fstype string) string {
	t.Helper()
	fuseNeedReader(t, img, fstype)
	mnt := t.TempDir()
	out, err := exec.Command(fuseBin(t), "mount-image", "--background", img, mnt).CombinedOutput()
	if err != nil {
		t.Fatalf("mount-image: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(fuseBin(t), "umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("closurefs umount: %v: %s", err, out)
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	if !fuseMounted(mnt) {
		t.Fatalf("mount-image --background returned before %s was mounted", mnt)
	}
	return mnt
}

// fuseImage is an image made by a reference tool, and the tree it holds.
type fuseImage struct {
	name, path, fstype, stage string
	tools, stress             bool // also run find/du/tar/rsync, the stress test on it
}

// fuseImages builds the fixture's closure with the reference tools, with
// fast settings: squashfs by mksquashfs (lz4) and gensquashfs (zstd), erofs
// by mkfs.erofs (lz4, and uncompressed). Debian's mkfs.erofs 1.5 cannot
// store 255-byte names, so its images leave out the odd-names store path.
func fuseImages(t testing.TB, f *fixture.Fixture) []fuseImage {
	t.Helper()
	stage := fuseStage(t, f, "")
	stageErofs := fuseStage(t, f, "-closurefs-odd-names")
	dir := t.TempDir()
	var imgs []fuseImage
	run := func(name, fstype string, stress bool, args ...string) {
		img := filepath.Join(dir, name)
		src := stage
		switch args[0] {
		case "mksquashfs":
			args = append([]string{args[0], src, img}, args[1:]...)
		case "gensquashfs":
			args = append(args, "-D", src, img)
		case "mkfs.erofs":
			src = stageErofs
			args = append(args, img, src)
		}
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			if len(out) > 500 {
				out = out[len(out)-500:]
			}
			t.Logf("%s: %v: ...%s (skipped)", strings.Join(args, " "), err, out)
			return
		}
		imgs = append(imgs, fuseImage{name, img, fstype, src, stress && fstype == "squashfs", stress})
	}
	run("mksquashfs-lz4.sqfs", "squashfs", false, "mksquashfs", "-comp", "lz4", "-noappend", "-no-progress", "-quiet")
	run("gensquashfs-zstd.sqfs", "squashfs", true, "gensquashfs", "-c", "zstd", "-X", "level=3", "-q", "-k")
	run("mkfs-lz4.erofs", "erofs", true, "mkfs.erofs", "-zlz4", "-T0", "--quiet")
	run("mkfs-plain.erofs", "erofs", false, "mkfs.erofs", "-T0", "--quiet")
	return imgs
}

// TestFuseImageMount mounts images made by the reference tools with
// closurefs mount-image and compares them with the kernel's mount of the
// same image (inode numbers, modes, owners, times, xattrs, contents) and
// with the source tree; find, du, tar and rsync agree too. On two of them
// 16 readers then read random files, and the daemon is stopped under load.
func TestFuseImageMount(t *testing.T) {
	fuseNeed(t)
	f := fixture.Get(t)
	imgs := fuseImages(t, f)
	if len(imgs) == 0 {
		t.Skip("no reference image tools")
	}
	dur := 10 * time.Second
	if s := os.Getenv("CLOSUREFS_FUSE_STRESS"); s != "" {
		if v, err := time.ParseDuration(s); err == nil {
			dur = v
		}
	}
	for _, img := range imgs {
		t.Run(img.name, func(t *testing.T) {
			fuseNeedReader(t, img.path, img.fstype)
			mnt := t.TempDir()
			d := fuseStart(t, mnt, "mount-image", img.path, mnt)
			kmnt := fuseKernelMount(t, img.path, img.fstype)
			treetest.Compare(t, mnt, kmnt, treetest.Options{Ino: true, Nlink: true, Owner: true, Mtime: true, DirSize: true, Xattrs: true})
			if img.tools {
				fuseToolsAgree(t, mnt, kmnt, fuseList(t, kmnt), false)
			}
			// statfs reports the image size.
			var sfs unix.Statfs_t
			fi, _ := os.Stat(img.path)
			if err := unix.Statfs(mnt, &sfs); err != nil || int64(sfs.Blocks)*sfs.Bsize < fi.Size() {
				t.Errorf("statfs: %v, %d blocks of %d for a %d-byte image", err, sfs.Blocks, sfs.Bsize, fi.Size())
			}
			// The mount reads ahead 1 MiB (the kernel offers FUSE only
			// 128 KiB at INIT; the daemon raises it, as root may).
			var st unix.Stat_t
			unix.Stat(mnt, &st)
			ra, err := os.ReadFile(fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev)))
			if err != nil || strings.TrimSpace(string(ra)) != "1024" {
				t.Errorf("read_ahead_kb of the mount: %q, %v; want 1024", ra, err)
			}
			if img.stress {
				fuseStress(t, mnt, img.stage, d, dur/4)
			}
		})
	}
}

// TestFuseImageBigDir mounts a squashfs and an erofs image of a directory
// of 100,000 entries and lists it in small batches with the kernel as the
// oracle.
func TestFuseImageBigDir(t *testing.T) {
	fuseNeed(t)
	src := t.TempDir()
	// Creating 100,000 files is much faster on tmpfs.
	if err := unix.Mount("tmpfs", src, "tmpfs", 0, "size=256m"); err == nil {
		t.Cleanup(func() { unix.Unmount(src, unix.MNT_DETACH) })
	}
	big := filepath.Join(src, "big")
	os.Mkdir(big, 0o755)
	const n = 100000
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(big, fmt.Sprintf("entry-%06d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A file with extended attributes (the store has none).
	xf := filepath.Join(src, "xattrs")
	os.WriteFile(xf, []byte("x"), 0o644)
	for _, kv := range [][2]string{{"user.one", "1"}, {"user.two", "second value"}, {"trusted.three", "3"}} {
		if err := unix.Lsetxattr(xf, kv[0], []byte(kv[1]), 0); err != nil {
			t.Logf("setxattr %s: %v", kv[0], err)
		}
	}
	dir := t.TempDir()
	sq, ero := filepath.Join(dir, "big.sqfs"), filepath.Join(dir, "big.erofs")
	fuseRun(t, "", "mksquashfs", src, sq, "-noappend", "-comp", "lz4", "-no-progress", "-quiet")
	fuseRun(t, "", "mkfs.erofs", ero, src)
	for _, img := range [][2]string{{sq, "squashfs"}, {ero, "erofs"}} {
		t.Run(img[1], func(t *testing.T) {
			mnt := fuseStartImage(t, img[0], img[1])
			kmnt := fuseKernelMount(t, img[0], img[1])
			start := time.Now()
			got := fuseList(t, filepath.Join(mnt, "big"))
			t.Logf("listed %d entries in %v", len(got), time.Since(start))
			want := fuseList(t, filepath.Join(kmnt, "big"))
			if len(got) != n || strings.Join(got, "/") != strings.Join(want, "/") {
				t.Errorf("listing: %d entries, kernel %d", len(got), len(want))
			}
			gx, kx := treetest.XattrString(filepath.Join(mnt, "xattrs")), treetest.XattrString(filepath.Join(kmnt, "xattrs"))
			if gx != kx || !strings.Contains(kx, "user.two=second value") {
				t.Errorf("xattrs: %q, kernel %q", gx, kx)
			}
			// A lookup deep in the directory finds the entry and its inode.
			// (Relative to the root's: see fuseScan.)
			var a, b, ra, rb unix.Stat_t
			unix.Lstat(filepath.Join(mnt, "big", "entry-099999"), &a)
			unix.Lstat(filepath.Join(kmnt, "big", "entry-099999"), &b)
			unix.Lstat(mnt, &ra)
			unix.Lstat(kmnt, &rb)
			if a.Ino-ra.Ino != b.Ino-rb.Ino || a.Ino == 0 {
				t.Errorf("inode of entry-099999: %d (root %d), kernel %d (root %d)", a.Ino, ra.Ino, b.Ino, rb.Ino)
			}
		})
	}
}
