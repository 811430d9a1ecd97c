package fusefs

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hanwen/go-fuse/v2/splice"
	"golang.org/x/sys/unix"
)

// MountOptions are the options both file systems share.
type MountOptions struct {
	// FsName is shown as the source in /proc/mounts (e.g. the image path).
	FsName string
	// AllowOther lets users other than the mounting one access the mount.
	AllowOther bool
	// Debug logs every FUSE request.
	Debug bool
	// Logger receives diagnostics; nil discards them.
	Logger *log.Logger
	// Timeout is the entry, attribute and negative-lookup timeout.
	Timeout time.Duration
	// CachedDirs tells the kernel to open directories without asking the
	// daemon and to keep their listings cached (see cachedDirs). Use it
	// where a listing changes only together with a NotifyContent of the
	// directory (images never change; the closure view notifies its root).
	CachedDirs bool
	// SpareProcs gives the Go runtime four processors (GOMAXPROCS) for
	// each request reader the server starts; see spareProcs. It changes
	// the whole process, so it suits a daemon that serves this one mount,
	// and it yields to a GOMAXPROCS set in the environment.
	SpareProcs bool
}

// cacheTimeout is the default kernel cache timeout: contents never change
// behind the kernel's back (images are immutable, store paths too, and
// the view invalidates entries it removes).
const cacheTimeout = time.Hour

// maxIO is the largest read and readahead the kernel is asked to issue.
const maxIO = 1 << 20

// Mount mounts root read-only on mountpoint and returns the running
// server once the kernel has acknowledged the mount.
func Mount(mountpoint string, root gofs.InodeEmbedder, rootAttr *gofs.StableAttr, o MountOptions) (*fuse.Server, error) {
	if err := CheckMountpoint(mountpoint); err != nil {
		return nil, err
	}
	t := o.Timeout
	if t == 0 {
		t = cacheTimeout
	}
	opts := &gofs.Options{
		EntryTimeout:    &t,
		AttrTimeout:     &t,
		NegativeTimeout: &t,
		RootStableAttr:  rootAttr,
		Logger:          o.Logger,
		MountOptions: fuse.MountOptions{
			AllowOther:           o.AllowOther,
			FsName:               o.FsName,
			Name:                 "closurefs",
			Options:              []string{"ro", "default_permissions"},
			MaxWrite:             maxIO,
			MaxReadAhead:         maxIO,
			EnableSymlinkCaching: true,
			DirectMount:          true,
			Debug:                o.Debug,
			Logger:               o.Logger,
			MaxBackground:        64,
		},
	}
	raw := gofs.NewNodeFS(root, opts)
	hook, _ := root.(mountHook)
	if hook != nil {
		raw = hook.wrapRaw(raw)
	}
	if o.CachedDirs {
		raw = &cachedDirs{RawFileSystem: raw}
	}
	if o.SpareProcs && os.Getenv("GOMAXPROCS") == "" {
		readers := fuseReaders()
		runtime.GOMAXPROCS(readers) // go-fuse starts one reader per P
		defer runtime.GOMAXPROCS(spareProcs(readers))
	}
	server, err := fuse.NewServer(raw, mountpoint, &opts.MountOptions)
	if err != nil {
		return nil, mountError(mountpoint, err)
	}
	if hook != nil {
		hook.mounted(server)
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		return nil, mountError(mountpoint, err)
	}
	if err := raiseReadahead(mountpoint, maxIO); err != nil && o.Logger != nil && o.Debug {
		o.Logger.Printf("readahead stays at the kernel's default: %v", err)
	}
	return server, nil
}

// spliceMax is the largest read go-fuse can answer by splicing: it
// sends the reply through a pipe that must hold the reply's header, the
// data and one more page, and it grows pipes no further than
// /proc/sys/fs/pipe-max-size (1 MiB by default). A larger splice fails,
// and go-fuse logs the failure and copies instead: one log line for every
// 1 MiB read of a file read front to back.
func spliceMax() int {
	return splice.MaxPipeSize() - 2*os.Getpagesize()
}

// dataResult answers a read with bytes in memory. go-fuse writes a
// vector result to /dev/fuse at once, where it would first try to splice
// a fuse.ReadResultData, growing a pipe for it and failing (and logging
// the failure, see spliceMax) for the largest reads.
func dataResult(b []byte) fuse.ReadResult {
	return fuse.ReadResultVector([][]byte{b})
}

// procsPerReader is how many Go processors a SpareProcs mount runs with
// for each of its request readers.
const procsPerReader = 4

// fuseReaders is how many request readers a SpareProcs mount's server
// starts: go-fuse starts one per processor (P), 2 to 16, so Mount sets
// GOMAXPROCS to this before it makes the server.
func fuseReaders() int { return min(max(runtime.NumCPU(), 2), 16) }

// spareProcs is the GOMAXPROCS a SpareProcs mount with the given number
// of request readers runs with once its server is made.
//
// Each reader waits in read(2) on /dev/fuse with its P in the system
// call state. With
// no more Ps than readers no P is ever idle, so the scheduler's monitor
// takes a waiting reader's P away after 20 µs, hands it to another thread
// that finds nothing to do, and keeps polling at its fastest rate: in
// perf profiles of a cold full read of an erofs image mount, runtime.sysmon
// took 15% of the daemon's samples and the hand-offs another 5%. With
// spare Ps the monitor leaves waiting readers alone (sysmon 9%, hand-offs
// under 1%). Alternating runs on the bench closure with 2 CPUs, against
// the same daemon without spare Ps: cold full reads of an erofs image
// 5.11 s against 5.68 s (five runs each, daemon CPU 4.60 s against 5.21 s),
// of a squashfs image 6.55 s against 7.63 s, of the closure view 8.49 s
// against 9.69 s (four runs each). 2 Ps per reader gained about half as
// much, 16 no more than 4. More readers instead (a larger GOMAXPROCS
// before the server is made) cost more CPU than they saved.
func spareProcs(readers int) int { return max(procsPerReader*readers, runtime.NumCPU()) }

// raiseReadahead sets the readahead of the mount on mountpoint to at
// least n bytes. The kernel offers a FUSE file system at most its default
// readahead (128 KiB) at INIT, whatever the daemon asks for; then files
// read front to back reach the daemon 256 KiB at a time with one request
// in flight, and a daemon that decompresses blocks in parallel idles
// between requests. The mount's backing device info is writable by root
// in /sys/class/bdi/MAJOR:MINOR/read_ahead_kb, as blockdev --setra does
// for disks; other users keep the default.
func raiseReadahead(mountpoint string, n int) error {
	var st unix.Stat_t
	if err := unix.Stat(mountpoint, &st); err != nil {
		return err
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	cur, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	want := n >> 10
	if k, err := strconv.Atoi(strings.TrimSpace(string(cur))); err == nil && k >= want {
		return nil
	}
	return os.WriteFile(p, []byte(strconv.Itoa(want)), 0)
}

// CheckMountpoint explains why mountpoint cannot take a mount, if it can't.
func CheckMountpoint(mountpoint string) error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("cannot mount: /dev/fuse is missing (load the fuse module: modprobe fuse)")
	}
	fi, err := os.Stat(mountpoint)
	if err != nil {
		return fmt.Errorf("cannot mount on %s: %w", mountpoint, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("cannot mount on %s: not a directory", mountpoint)
	}
	if mounted, _ := IsMountpoint(mountpoint); mounted {
		return fmt.Errorf("cannot mount on %s: something is already mounted there (closurefs umount %s)", mountpoint, mountpoint)
	}
	return nil
}

// IsMountpoint reports whether p is the root of a mount.
func IsMountpoint(p string) (bool, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return false, err
	}
	var st, pst unix.Stat_t
	if err := unix.Lstat(abs, &st); err != nil {
		if errors.Is(err, unix.ENOTCONN) {
			return true, nil // a dead FUSE mount
		}
		return false, err
	}
	if err := unix.Lstat(filepath.Dir(abs), &pst); err != nil {
		return false, err
	}
	if st.Dev != pst.Dev || abs == "/" {
		return true, nil
	}
	// Bind mounts of the same file system: ask mountinfo.
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, nil
	}
	return mountinfoHas(string(data), abs), nil
}

// mountinfoHas reports whether mountinfo lists a mount at p.
func mountinfoHas(mountinfo, p string) bool {
	for _, line := range splitLines(mountinfo) {
		var f [5]string
		n := 0
		start := 0
		for i := 0; i <= len(line) && n < 5; i++ {
			if i == len(line) || line[i] == ' ' {
				f[n] = line[start:i]
				n++
				start = i + 1
			}
		}
		if n == 5 && unescapeMount(f[4]) == p {
			return true
		}
	}
	return false
}

func splitLines(s string) []string {
	var lines []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		lines = append(lines, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return lines
}

// unescapeMount undoes the octal escapes of /proc/self/mountinfo.
func unescapeMount(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			v := (int(s[i+1]-'0') << 6) | (int(s[i+2]-'0') << 3) | int(s[i+3]-'0')
			b = append(b, byte(v))
			i += 3
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

// mountError turns a mount failure into one clear message.
func mountError(mountpoint string, err error) error {
	switch {
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return fmt.Errorf("cannot mount on %s: not permitted (run as root, or install fusermount3 with user_allow_other for --allow-other): %v", mountpoint, err)
	case errors.Is(err, syscall.EBUSY):
		return fmt.Errorf("cannot mount on %s: mountpoint is busy: %v", mountpoint, err)
	case errors.Is(err, syscall.ENODEV):
		return fmt.Errorf("cannot mount on %s: the kernel has no FUSE support (modprobe fuse): %v", mountpoint, err)
	}
	return fmt.Errorf("cannot mount on %s: %w", mountpoint, err)
}

// Unmount unmounts the closurefs (or any FUSE) mount at mountpoint. With
// lazy, a busy mount is detached now and goes away when its last user
// leaves.
func Unmount(mountpoint string, lazy bool) error {
	flags := 0
	if lazy {
		flags = unix.MNT_DETACH
	}
	err := unix.Unmount(mountpoint, flags)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("%s is not a mountpoint", mountpoint)
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("%s is busy (files open or a process inside it); use --lazy to detach it now", mountpoint)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("unmounting %s: not permitted (run as root)", mountpoint)
	}
	return fmt.Errorf("unmounting %s: %w", mountpoint, err)
}

// Passthrough reports whether the kernel accepted FUSE passthrough on
// server's connection (Linux 6.9+, and the daemon must be root).
func Passthrough(server *fuse.Server) bool {
	return os.Geteuid() == 0 && server.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH != 0
}
