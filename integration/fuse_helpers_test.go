package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fuseNeed skips t unless FUSE mounts can be made here.
func fuseNeed(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("FUSE mounts need root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
}

var fuseBinOnce struct {
	sync.Once
	path string
	err  error
}

// fuseBin returns the path of a closurefs binary built from this tree.
func fuseBin(t testing.TB) string {
	t.Helper()
	fuseBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "closurefs-fuse-bin")
		if err != nil {
			fuseBinOnce.err = err
			return
		}
		p := filepath.Join(dir, "closurefs")
		out, err := exec.Command("go", "build", "-o", p, "github.com/closurefs/closurefs/cmd/closurefs").CombinedOutput()
		if err != nil {
			fuseBinOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
		fuseBinOnce.path = p
	})
	if fuseBinOnce.err != nil {
		t.Fatal(fuseBinOnce.err)
	}
	return fuseBinOnce.path
}

// fuseDaemon is a running `closurefs mount` or `mount-image`.
type fuseDaemon struct {
	cmd *exec.Cmd
	mnt string
	log *bytes.Buffer
	mu  sync.Mutex
	// exited receives the daemon's exit error (and is refilled by stop).
	exited chan error
}

// lockedBuffer guards a buffer written by a child process.
type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// Log returns what the daemon logged so far.
func (d *fuseDaemon) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// fuseStart runs closurefs args in the foreground and waits until mnt is a
// mount point. The daemon is stopped (SIGTERM) when the test ends.
func fuseStart(t testing.TB, mnt string, args ...string) *fuseDaemon {
	t.Helper()
	d := &fuseDaemon{mnt: mnt, log: &bytes.Buffer{}}
	d.cmd = exec.Command(fuseBin(t), args...)
	d.cmd.Stdout = lockedWriter{&d.mu, d.log}
	d.cmd.Stderr = lockedWriter{&d.mu, d.log}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- d.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for !fuseMounted(mnt) {
		select {
		case err := <-exited:
			t.Fatalf("closurefs %s exited (%v):\n%s", strings.Join(args, " "), err, d.Log())
		default:
		}
		if time.Now().After(deadline) {
			d.cmd.Process.Kill()
			t.Fatalf("closurefs %s: no mount after 30s:\n%s", strings.Join(args, " "), d.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			t.Errorf("daemon still running 20s after SIGTERM; log:\n%s", d.Log())
			unix.Unmount(mnt, unix.MNT_DETACH)
			d.cmd.Process.Kill()
			<-exited
		}
		if fuseMounted(mnt) {
			t.Errorf("%s still mounted after the daemon exited", mnt)
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	d.exited = exited
	return d
}

// stop sends SIGTERM and returns the daemon's exit error.
func (d *fuseDaemon) stop(t testing.TB, timeout time.Duration) error {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		d.exited <- err
		return err
	case <-time.After(timeout):
		return fmt.Errorf("still running %v after SIGTERM", timeout)
	}
}

// fuseMounted reports whether p is a FUSE mount point.
func fuseMounted(p string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == p && strings.Contains(line, " - fuse.closurefs ") {
			return true
		}
	}
	return false
}

// fuseRun runs a command and returns its stdout, failing t on error.
func fuseRun(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// fuseToolsAgree checks that find, du, tar and rsync see the same over
// both trees: names relative to gotDir and wantDir.
// With blocks, du's block counts are compared too (not for images, whose
// block counts are the format's own).
func fuseToolsAgree(t testing.TB, gotDir, wantDir string, names []string, blocks bool) {
	t.Helper()
	find := func(dir string) string {
		return fuseRun(t, dir, "find", append(append([]string{}, names...), "-printf", "%p %y %m %s %n %U %G %T@ %l\n")...)
	}
	if g, w := find(gotDir), find(wantDir); g != w {
		t.Errorf("find differs:\n%s", fuseDiff(g, w))
	}
	du := func(dir string) string {
		out := fuseRun(t, dir, "du", append([]string{"-b", "-a"}, names...)...)
		if blocks {
			out += fuseRun(t, dir, "du", append([]string{"-s", "-c"}, names...)...)
		}
		return out
	}
	if g, w := du(gotDir), du(wantDir); g != w {
		t.Errorf("du differs:\n%s", fuseDiff(g, w))
	}
	tarSum := func(dir string) string {
		out := fuseRun(t, dir, "sh", append([]string{"-c", `tar --sort=name --numeric-owner --format=gnu -cf - "$@" | sha256sum`, "sh"}, names...)...)
		return out
	}
	if g, w := tarSum(gotDir), tarSum(wantDir); g != w {
		t.Errorf("tar archives differ: %s vs %s", g, w)
	}
	// rsync the mount into a copy, then let rsync compare the copy with the
	// source by checksum: it must find nothing to do.
	dst := t.TempDir()
	src := make([]string, len(names))
	for i, n := range names {
		src[i] = filepath.Join(gotDir, n)
	}
	fuseRun(t, "", "rsync", append(append([]string{"-aH"}, src...), dst+"/")...)
	for i, n := range names {
		src[i] = filepath.Join(wantDir, n)
	}
	out := fuseRun(t, "", "rsync", append(append([]string{"-aHcn", "--delete", "--itemize-changes"}, src...), dst+"/")...)
	if strings.TrimSpace(out) != "" {
		t.Errorf("rsync of the mount differs from the source:\n%s", out)
	}
}

// fuseDiff shows the first differing lines of two outputs.
func fuseDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, "- "+y, "+ "+x)
			if len(out) > 10 {
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// lgetxattr reads one extended attribute of p (not following symlinks).
func lgetxattr(p, key string, buf []byte) (int, error) { return unix.Lgetxattr(p, key, buf) }
