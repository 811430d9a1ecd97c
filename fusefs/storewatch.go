package fusefs

import (
	"bytes"
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// storeWatch learns from inotify which entries left the store directory
// (deleted, or renamed away, as garbage collection does), so that the
// view need not lstat every store path of its closure on every check:
// for a system closure of thousands of paths, that polling alone would
// keep a core several percent busy.
type storeWatch struct {
	fd  int
	buf []byte
	// dead reports that the directory itself went away: the watch sees
	// nothing more.
	dead bool
}

// newStoreWatch watches dir; it returns nil if inotify is unavailable
// (the view then polls).
func newStoreWatch(dir string) *storeWatch {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil
	}
	const mask = unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		return nil
	}
	return &storeWatch{fd: fd, buf: make([]byte, 64<<10)}
}

// removed returns the names that left the directory since the last call.
// all reports that events may have been lost (queue overflow, or the
// directory itself went away): then any path may be gone.
func (w *storeWatch) removed() (names []string, all bool) {
	for {
		n, err := unix.Read(w.fd, w.buf)
		if err != nil || n <= 0 {
			// EAGAIN: no more events. Any other error: trust nothing.
			return names, all || (err != nil && err != unix.EAGAIN && err != unix.EINTR)
		}
		b := w.buf[:n]
		for len(b) >= unix.SizeofInotifyEvent {
			mask := binary.NativeEndian.Uint32(b[4:8])
			nameLen := int(binary.NativeEndian.Uint32(b[12:16]))
			end := unix.SizeofInotifyEvent + nameLen
			if end > len(b) {
				return names, true
			}
			if mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED) != 0 {
				w.dead = true
			}
			if mask&unix.IN_Q_OVERFLOW != 0 || w.dead {
				all = true
			}
			if name := b[unix.SizeofInotifyEvent:end]; nameLen > 0 {
				if i := bytes.IndexByte(name, 0); i >= 0 {
					name = name[:i]
				}
				names = append(names, string(name))
			}
			b = b[end:]
		}
	}
}

// close stops watching.
func (w *storeWatch) close() { unix.Close(w.fd) }
