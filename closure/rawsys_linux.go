//go:build linux

package closure

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The store walk makes several short system calls per file (openat,
// fstat, read, close), each far shorter than a scheduling round. Made the
// usual way, every one of them tells the Go scheduler that the thread may
// block, and on a machine with slow system calls the scheduler's monitor
// then keeps handing the goroutine's processor to another thread and back
// (tens of thousands of wake-ups and futex calls per closure, measured
// with strace -c). These wrappers make them as raw system calls instead:
// the goroutine keeps its processor for the call's duration, which is what
// a worker that does nothing else wants.

func rawErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// rawOpenat is unix.Openat without the scheduler hand-off.
func rawOpenat(dirfd int, name string, flags int) (int, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return -1, err
	}
	for {
		fd, _, e := unix.RawSyscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(flags), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(fd), nil
	}
}

// rawFstat is unix.Fstat without the scheduler hand-off.
func rawFstat(fd int, st *unix.Stat_t) error {
	_, _, e := unix.RawSyscall(unix.SYS_FSTAT, uintptr(fd), uintptr(unsafe.Pointer(st)), 0)
	return rawErr(e)
}

// rawRead is unix.Read without the scheduler hand-off.
func rawRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// rawGetdents is unix.Getdents without the scheduler hand-off.
func rawGetdents(fd int, p []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_GETDENTS64, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// rawClose is unix.Close without the scheduler hand-off.
func rawClose(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}
