package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/closurefs/closurefs/integration/fixture"
	"github.com/closurefs/closurefs/internal/treetest"
)

// fuseClosureNames returns the base names of the closure of p, sorted.
func fuseClosureNames(t testing.TB, roots ...string) []string {
	t.Helper()
	out := fuseRun(t, "", "nix-store", append([]string{"-qR"}, roots...)...)
	var names []string
	for _, l := range strings.Fields(out) {
		names = append(names, filepath.Base(l))
	}
	slices.Sort(names)
	return names
}

func fuseList(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestFuseViewFixture mounts the closure view of the fixture and compares
// it with the store: listing, trees, inode numbers, xattrs against
// nix-store, and find/du/tar/rsync.
func TestFuseViewFixture(t *testing.T) {
	fuseNeed(t)
	f := fixture.Get(t)
	mnt := t.TempDir()
	d := fuseStart(t, mnt, "mount", f.Root, mnt)
	t.Logf("daemon: %s", strings.TrimSpace(d.Log()))

	want := fuseClosureNames(t, f.Root)
	if got := fuseList(t, mnt); !slices.Equal(got, want) {
		t.Fatalf("listing: got %d names, want the %d of the closure:\n%v", len(got), len(want), fuseDiff(strings.Join(got, "\n"), strings.Join(want, "\n")))
	}
	// Trees are identical, inode numbers included.
	for _, n := range want {
		treetest.Compare(t, filepath.Join(mnt, n), filepath.Join(f.StoreDir, n), treetest.Options{Ino: true, Nlink: true, Owner: true, Mtime: true, DirSize: true})
	}
	fuseToolsAgree(t, mnt, f.StoreDir, want, true)

	// A store path outside the closure is ENOENT although it exists.
	var outside string
	ents, _ := os.ReadDir(f.StoreDir)
	for _, e := range ents {
		if !slices.Contains(want, e.Name()) && !strings.HasPrefix(e.Name(), ".") {
			outside = e.Name()
			break
		}
	}
	if outside == "" {
		t.Fatal("no store path outside the fixture closure")
	}
	if _, err := os.Lstat(filepath.Join(mnt, outside)); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("lstat of %s outside the closure: %v, want ENOENT", outside, err)
	}
	// Writes fail with EROFS.
	dag := filepath.Base(f.Named["dag-07"])
	for _, p := range []string{filepath.Join(mnt, "new-file"), filepath.Join(mnt, dag, "name")} {
		if _, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644); !errors.Is(err, syscall.EROFS) {
			t.Errorf("open %s for writing: %v, want EROFS", p, err)
		}
	}
	if err := os.Mkdir(filepath.Join(mnt, dag, "newdir"), 0o755); !errors.Is(err, syscall.EROFS) {
		t.Errorf("mkdir: %v, want EROFS", err)
	}
	// Inode numbers survive the kernel forgetting them.
	var st1, st2 syscall.Stat_t
	syscall.Lstat(filepath.Join(mnt, dag, "name"), &st1)
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0)
	syscall.Lstat(filepath.Join(mnt, dag, "name"), &st2)
	if st1.Ino == 0 || st1.Ino != st2.Ino {
		t.Errorf("inode of %s/name: %d then %d", dag, st1.Ino, st2.Ino)
	}
	// A file opened twice at once reads the same through both opens, and
	// again once the kernel forgot its inode (with passthrough, the
	// daemon keeps one backing file per inode the kernel knows).
	name := filepath.Join(dag, "name")
	orig, err := os.ReadFile(filepath.Join(f.StoreDir, name))
	if err != nil {
		t.Fatal(err)
	}
	f1, err1 := os.Open(filepath.Join(mnt, name))
	f2, err2 := os.Open(filepath.Join(mnt, name))
	if err1 != nil || err2 != nil {
		t.Fatalf("opening %s twice: %v, %v", name, err1, err2)
	}
	for i, fh := range []*os.File{f1, f2, f1} {
		b, err := io.ReadAll(io.NewSectionReader(fh, 0, 1<<20))
		if err != nil || !bytes.Equal(b, orig) {
			t.Errorf("read %d of %s through two opens: %q, %v; want %q", i, name, b, err, orig)
		}
	}
	f1.Close()
	f2.Close()
	for _, drop := range []string{"", "2"} {
		if drop != "" {
			os.WriteFile("/proc/sys/vm/drop_caches", []byte(drop), 0)
		}
		if b, err := os.ReadFile(filepath.Join(mnt, name)); err != nil || !bytes.Equal(b, orig) {
			t.Errorf("reopening %s (drop_caches %q): %q, %v; want %q", name, drop, b, err, orig)
		}
	}
	// xattrs agree with the Nix database. (Store paths that are symlinks
	// have none: the kernel refuses user.* xattrs on symlinks.)
	for _, key := range []string{"dag-07", "dag-top", "single-file", "empty-dir-path"} {
		p := f.Named[key]
		mp := filepath.Join(mnt, filepath.Base(p))
		hash := strings.TrimSpace(fuseRun(t, "", "nix-store", "-q", "--hash", p))
		size := strings.TrimSpace(fuseRun(t, "", "nix-store", "-q", "--size", p))
		refs := strings.Fields(fuseRun(t, "", "nix-store", "-q", "--references", p))
		slices.Sort(refs)
		var referrers []string
		for _, r := range strings.Fields(fuseRun(t, "", "nix-store", "-q", "--referrers", p)) {
			if slices.Contains(want, filepath.Base(r)) {
				referrers = append(referrers, r)
			}
		}
		slices.Sort(referrers)
		wantX := map[string]string{
			"user.nix.nar-hash":   hash,
			"user.nix.nar-size":   size,
			"user.nix.references": strings.Join(refs, "\n"),
			"user.nix.referrers":  strings.Join(referrers, "\n"),
		}
		for k, v := range wantX {
			buf := make([]byte, 1<<16)
			n, err := lgetxattr(mp, k, buf)
			if err != nil || string(buf[:n]) != v {
				t.Errorf("%s %s: got %q (%v), want %q", key, k, buf[:max(n, 0)], err, v)
			}
		}
	}
	// Status over the control socket.
	st := fuseRun(t, "", fuseBin(t), "ctl", mnt, "status")
	if !strings.Contains(st, "store paths: "+strconv.Itoa(len(want))) {
		t.Errorf("ctl status:\n%s", st)
	}
	// ctl snapshot writes an image of exactly the view: mounted by the
	// kernel, it holds the same store paths, the same trees.
	img := filepath.Join(t.TempDir(), "view.erofs")
	fuseRun(t, "", fuseBin(t), "ctl", mnt, "snapshot", "-q", "-t", "erofs", "-o", img)
	kmnt := fuseKernelMount(t, img, "erofs")
	if got := fuseList(t, kmnt); !slices.Equal(got, want) {
		t.Errorf("ctl snapshot image lists %d names, want the %d of the view", len(got), len(want))
	}
	for _, key := range []string{"dag-top", "symlinks", "sizes"} {
		n := filepath.Base(f.Named[key])
		treetest.Compare(t, filepath.Join(kmnt, n), filepath.Join(mnt, n), treetest.Options{})
	}
}

// TestFuseViewReadDir serves the fixture from the optimised store (hard
// links) with --read-dir, resolving the closure from that store's database.
func TestFuseViewReadDir(t *testing.T) {
	fuseNeed(t)
	f := fixture.Get(t)
	mnt := t.TempDir()
	fuseStart(t, mnt, "mount", "--db", f.OptDB, "--read-dir", f.OptStoreDir, f.Root, mnt)
	want := fuseClosureNames(t, f.Root)
	if got := fuseList(t, mnt); !slices.Equal(got, want) {
		t.Fatalf("listing: got %d names, want %d", len(got), len(want))
	}
	for _, key := range []string{"identical-a", "identical-b", "dag-top", "symlinks"} {
		n := filepath.Base(f.Named[key])
		treetest.Compare(t, filepath.Join(mnt, n), filepath.Join(f.OptStoreDir, n), treetest.Options{Ino: true, Nlink: true, Owner: true, Mtime: true})
	}
}

// TestFuseViewKernelCache mounts the view with --kernel-cache (files
// opened by the kernel without the daemon, read through the mount's page
// cache) and compares every store path of the closure with the store,
// twice (the second time from the cache), and checks that writes fail.
func TestFuseViewKernelCache(t *testing.T) {
	fuseNeed(t)
	f := fixture.Get(t)
	mnt := t.TempDir()
	d := fuseStart(t, mnt, "mount", "--kernel-cache", f.Root, mnt)
	if !strings.Contains(d.Log(), "--kernel-cache") {
		t.Errorf("daemon does not report the read mode: %s", d.Log())
	}
	want := fuseClosureNames(t, f.Root)
	if got := fuseList(t, mnt); !slices.Equal(got, want) {
		t.Fatalf("listing: got %d names, want %d", len(got), len(want))
	}
	for round := 0; round < 2; round++ {
		for _, n := range want {
			treetest.Compare(t, filepath.Join(mnt, n), filepath.Join(f.StoreDir, n), treetest.Options{Nlink: true, Owner: true, Mtime: true})
		}
	}
	dag := filepath.Base(f.Named["dag-07"])
	if _, err := os.OpenFile(filepath.Join(mnt, dag, "name"), os.O_WRONLY, 0); !errors.Is(err, syscall.EROFS) {
		t.Errorf("open for writing: %v, want EROFS", err)
	}
}

// TestFuseViewLive flips a root symlink and deletes a store path, and
// checks that the view follows while an open file stays readable.
func TestFuseViewLive(t *testing.T) {
	fuseNeed(t)
	f := fixture.Get(t)
	a, b := f.Named["dag-20"], f.Named["dag-07"]
	link := filepath.Join(t.TempDir(), "result")
	if err := os.Symlink(a, link); err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	d := fuseStart(t, mnt, "mount", link, mnt)
	wantA, wantB := fuseClosureNames(t, a), fuseClosureNames(t, b)
	if got := fuseList(t, mnt); !slices.Equal(got, wantA) {
		t.Fatalf("listing: got %v, want %v", got, wantA)
	}
	// Open a file of A that is not in B's closure.
	var onlyA string
	for _, n := range wantA {
		if !slices.Contains(wantB, n) {
			if fi, err := os.Stat(filepath.Join(f.StoreDir, n, "name")); err == nil && fi.Mode().IsRegular() {
				onlyA = n
				break
			}
		}
	}
	if onlyA == "" {
		t.Fatal("no store path in A's closure only")
	}
	open, err := os.Open(filepath.Join(mnt, onlyA, "name"))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	// Let the kernel cache the entry, so the switch must invalidate it.
	os.Lstat(filepath.Join(mnt, onlyA))

	tmp := link + ".tmp"
	os.Symlink(b, tmp)
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for !slices.Equal(fuseList(t, mnt), wantB) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("listing did not switch to B's closure in 10s: %v\nlog:\n%s", fuseList(t, mnt), d.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("view switched %v after the root symlink flipped", time.Since(start))
	if _, err := os.Lstat(filepath.Join(mnt, onlyA)); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("%s left the closure but lstat gives %v", onlyA, err)
	}
	data := make([]byte, 100)
	if n, err := open.ReadAt(data, 0); err != nil && n == 0 {
		t.Errorf("file opened before the switch: %v", err)
	} else if want, _ := os.ReadFile(filepath.Join(f.StoreDir, onlyA, "name")); string(data[:n]) != string(want) {
		t.Errorf("file opened before the switch reads %q, want %q", data[:n], want)
	}

	// Garbage collection: a fresh path, added as a root over the control
	// socket, disappears from the view when nix-store --delete removes it.
	gc := fuseBuildGarbage(t)
	fuseRun(t, "", fuseBin(t), "ctl", mnt, "add-root", gc)
	if _, err := os.Lstat(filepath.Join(mnt, filepath.Base(gc))); err != nil {
		t.Fatalf("added root %s not in the view: %v", gc, err)
	}
	// The kernel caches the root's listing: the switch must invalidate it.
	if got := fuseList(t, mnt); !slices.Contains(got, filepath.Base(gc)) {
		t.Errorf("added root %s not in the listing: %v", gc, got)
	}
	fuseRun(t, "", "nix-store", "--delete", gc)
	start = time.Now()
	for {
		_, err := os.Lstat(filepath.Join(mnt, filepath.Base(gc)))
		if errors.Is(err, syscall.ENOENT) {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("deleted %s still in the view after 10s (%v); log:\n%s", gc, err, d.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("deleted store path left the view after %v", time.Since(start))
	if got := fuseList(t, mnt); !slices.Equal(got, wantB) {
		t.Errorf("after the deletion: %v, want %v", got, wantB)
	}
	roots := fuseRun(t, "", fuseBin(t), "ctl", mnt, "roots")
	if !strings.Contains(roots, link+" -> "+b) {
		t.Errorf("ctl roots:\n%s", roots)
	}
}

// fuseBuildGarbage builds a new store path no GC root holds.
func fuseBuildGarbage(t testing.TB) string {
	t.Helper()
	expr := filepath.Join(t.TempDir(), "gc.nix")
	name := "closurefs-fuse-gc-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	os.WriteFile(expr, []byte(`derivation { name = "`+name+`"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo garbage > $out" ]; }`), 0o644)
	out := fuseRun(t, "", "nix-build", "--no-out-link", "--option", "sandbox", "false", "--option", "substituters", "", "--option", "build-users-group", "", expr)
	return strings.TrimSpace(out)
}

// TestFuseViewStress runs 16 parallel readers over random files of the
// view (10 s; CLOSUREFS_FUSE_STRESS=30s for longer), checks every byte
// against the store and the daemon's memory, then unmounts under load.
func TestFuseViewStress(t *testing.T) {
	fuseNeed(t)
	f := fixture.Get(t)
	dur := 10 * time.Second
	if s := os.Getenv("CLOSUREFS_FUSE_STRESS"); s != "" {
		if v, err := time.ParseDuration(s); err == nil {
			dur = v
		}
	}
	for _, mode := range []string{"passthrough", "no-passthrough"} {
		t.Run(mode, func(t *testing.T) {
			mnt := t.TempDir()
			args := []string{"mount", f.Root, mnt}
			if mode == "no-passthrough" {
				args = append(args, "--no-passthrough")
			}
			d := fuseStart(t, mnt, args...)
			fuseStress(t, mnt, f.StoreDir, d, dur/2)
		})
	}
}

// fuseStress reads random files under mnt in 16 goroutines for dur and
// compares them with the same files under src; then it stops the daemon
// while the readers run.
func fuseStress(t *testing.T, mnt, src string, d *fuseDaemon, dur time.Duration) {
	var files []string
	filepath.Walk(src, func(p string, fi os.FileInfo, err error) error { return nil })
	for _, n := range fuseList(t, mnt) {
		filepath.Walk(filepath.Join(src, n), func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				rel, _ := filepath.Rel(src, p)
				files = append(files, rel)
			}
			return nil
		})
	}
	if len(files) == 0 {
		t.Fatal("no files to read")
	}
	rss0 := fuseRSS(d.cmd.Process.Pid)
	var stop atomic.Bool
	var stopping atomic.Bool
	var reads, bytesRead atomic.Int64
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			buf := make([]byte, 1<<20)
			for !stop.Load() {
				rel := files[rng.Intn(len(files))]
				got, err := os.ReadFile(filepath.Join(mnt, rel))
				if err != nil {
					if stopping.Load() {
						return // the mount is going away
					}
					errs <- err
					return
				}
				want, err := os.ReadFile(filepath.Join(src, rel))
				if err != nil {
					errs <- err
					return
				}
				if string(got) != string(want) {
					errs <- errors.New(rel + ": contents differ")
					return
				}
				_ = buf
				reads.Add(1)
				bytesRead.Add(int64(len(got)))
			}
		}(int64(w))
	}
	time.Sleep(dur)
	rss1 := fuseRSS(d.cmd.Process.Pid)
	// Unmount under load.
	stopping.Store(true)
	err := d.stop(t, 20*time.Second)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("reader: %v", e)
	}
	t.Logf("%d files read (%d MB) by 16 readers in %v; daemon RSS %d MB -> %d MB", reads.Load(), bytesRead.Load()>>20, dur, rss0>>20, rss1>>20)
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 0 {
			t.Errorf("daemon after SIGTERM under load: %v\n%s", err, d.Log())
		}
	}
	if rss1 > 512<<20 {
		t.Errorf("daemon RSS grew to %d MB", rss1>>20)
	}
	if fuseMounted(mnt) {
		t.Errorf("%s still mounted", mnt)
	}
}

// fuseRSS returns a process's resident set size in bytes.
func fuseRSS(pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// fuseListAll lists dir with ls -a, which, unlike os.ReadDir, shows the
// "." and ".." entries the file system returns.
func fuseListAll(t testing.TB, dir string) []string {
	t.Helper()
	return strings.Fields(fuseRun(t, "", "ls", "-a", dir))
}

// TestFuseViewRoots covers the roots' edge cases: a root whose closure
// the source cannot give is left out while the other roots are still
// followed; a view that has been empty lists new paths again; the root
// lists "." and "..".
func TestFuseViewRoots(t *testing.T) {
	fuseNeed(t)
	f := fixture.Get(t)
	a := f.Named["dag-20"]
	inA := fuseClosureNames(t, a)
	refs := strings.Fields(fuseRun(t, "", "nix-store", "-q", "--references", a))
	var a2, outside string
	for _, r := range refs {
		if r != a {
			a2 = r
			break
		}
	}
	for _, p := range f.Paths {
		if !slices.Contains(inA, filepath.Base(p)) {
			outside = p
			break
		}
	}
	if a2 == "" || outside == "" {
		t.Fatalf("fixture: no reference of %s (%v) or no path outside its closure", a, refs)
	}
	dir := t.TempDir()
	reg := filepath.Join(dir, "registration")
	os.WriteFile(reg, []byte(fuseRun(t, "", fuseBin(t), "closure", "--format", "registration", a)), 0o644)
	link1, link2 := filepath.Join(dir, "r1"), filepath.Join(dir, "r2")
	os.Symlink(a, link1)
	os.Symlink(a2, link2)
	mnt := t.TempDir()
	d := fuseStart(t, mnt, "mount", "--registration", reg, link1, link2, mnt)
	waitList := func(want []string, what string) {
		t.Helper()
		start := time.Now()
		for {
			got := fuseListAll(t, mnt)
			if slices.Equal(got, append([]string{".", ".."}, want...)) {
				t.Logf("%s: listing right after %v", what, time.Since(start))
				return
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("%s: listing %v, want . .. and %v; log:\n%s", what, got, want, d.Log())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	flip := func(link, target string) {
		t.Helper()
		os.Remove(link + ".tmp")
		if err := os.Symlink(target, link+".tmp"); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(link+".tmp", link); err != nil {
			t.Fatal(err)
		}
	}
	waitList(inA, "start")

	// r1 leads out of the registration: it is left out, r2 still counts.
	flip(link1, outside)
	waitList(fuseClosureNames(t, a2), "r1 left the registration")
	if roots := fuseRun(t, "", fuseBin(t), "ctl", mnt, "roots"); !strings.Contains(roots, "root "+link1+" -> "+outside+" (left out: ") {
		t.Errorf("ctl roots does not say r1 is left out:\n%s", roots)
	}
	// r2 is still followed.
	flip(link2, a)
	waitList(inA, "r2 flipped while r1 is left out")
	time.Sleep(time.Second) // a dozen checks: the left-out root must not be retried and logged at each
	if n := strings.Count(d.Log(), "left out"); n > 2 {
		t.Errorf("the left-out root was logged %d times; log:\n%s", n, d.Log())
	}

	// Empty, then not: the kernel's cached listing must follow.
	fuseRun(t, "", fuseBin(t), "ctl", mnt, "remove-root", link1)
	fuseRun(t, "", fuseBin(t), "ctl", mnt, "remove-root", link2)
	waitList(nil, "no roots")
	fuseRun(t, "", fuseBin(t), "ctl", mnt, "add-root", a2)
	waitList(fuseClosureNames(t, a2), "a root added to the empty view")
	// A root outside the registration is refused.
	if out, err := exec.Command(fuseBin(t), "ctl", mnt, "add-root", outside).CombinedOutput(); err == nil || !strings.Contains(string(out), "not in") {
		t.Errorf("ctl add-root of a path outside the registration: %v %s", err, out)
	}
}

// TestFuseViewChroot serves a store path that exists only in a chroot
// store (--read-dir): ctl, also through a symlink to the mountpoint,
// snapshots the view from there.
func TestFuseViewChroot(t *testing.T) {
	fuseNeed(t)
	f := fixture.Get(t)
	chroot := t.TempDir()
	name := strings.Repeat("a", 32) + "-chroot-only"
	p := filepath.Join(chroot, name)
	os.MkdirAll(filepath.Join(p, "d"), 0o755)
	os.WriteFile(filepath.Join(p, "d", "f"), []byte("only in the chroot\n"), 0o644)
	root := f.StoreDir + "/" + name
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(mnt, link)
	logFile := filepath.Join(t.TempDir(), "daemon.log")
	d := fuseStart(t, mnt, "mount", "--scan", "--read-dir", chroot, "--log", logFile, root, link)
	if got := fuseList(t, mnt); !slices.Equal(got, []string{name}) {
		t.Fatalf("listing %v", got)
	}
	// A foreground daemon logs to --log, not to standard error.
	if b, _ := os.ReadFile(logFile); !strings.Contains(string(b), "mounted the closure") || d.Log() != "" {
		t.Errorf("--log file holds %q; standard error %q", b, d.Log())
	}
	for _, spelling := range []string{mnt, link} {
		out := fuseRun(t, "", fuseBin(t), "ctl", spelling, "status", "--json")
		var st struct{ Mountpoint, ReadDir string }
		if err := json.Unmarshal([]byte(out), &st); err != nil || st.Mountpoint != mnt || st.ReadDir != chroot {
			t.Errorf("ctl %s status --json: %+v, %v", spelling, st, err)
		}
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "view.img")
	fuseRun(t, "", fuseBin(t), "ctl", link, "snapshot", "-q", "-t", "squashfs", "-o", img)
	ref := filepath.Join(dir, "ref.img")
	fuseRun(t, "", fuseBin(t), "snapshot", "-q", "-t", "squashfs", "--scan", "--read-dir", chroot, root, "-o", ref)
	got, _ := os.ReadFile(img)
	want, _ := os.ReadFile(ref)
	if len(want) == 0 || !bytes.Equal(got, want) {
		t.Errorf("ctl snapshot of the chroot view (%d bytes) differs from snapshot --read-dir (%d bytes)", len(got), len(want))
	}
}
