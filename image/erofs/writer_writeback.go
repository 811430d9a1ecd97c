package erofs

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// writebackBytes is how much newly written data the writer lets
// accumulate before asking the kernel to start writing it to disk.
const writebackBytes = 16 << 20

// writeback starts the kernel's writeback of an output file's data while
// the image is still being written (sync_file_range with
// SYNC_FILE_RANGE_WRITE, which waits for nothing already under way), so
// that the caller's final fsync finds little left to write instead of the
// whole image. It only concerns files: for any other io.WriterAt it does
// nothing, and errors are ignored (the fsync reports real ones).
type writeback struct {
	conn syscall.RawConn // nil: not a file, or sync_file_range failed
	// from is the start of the range not yet handed to writeback; end is
	// the end of the data written so far.
	from, end int64
}

func newWriteback(w any) *writeback {
	sc, ok := w.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return &writeback{}
	}
	c, err := sc.SyscallConn()
	if err != nil {
		return &writeback{}
	}
	return &writeback{conn: c}
}

// wrote records that [off, off+n) was written. The data area is written
// front to back, so a range from the lowest offset not yet handed over
// to the highest written covers it.
func (wb *writeback) wrote(off int64, n int) {
	if wb.conn == nil {
		return
	}
	if off < wb.from {
		wb.from = off
	}
	if e := off + int64(n); e > wb.end {
		wb.end = e
	}
	if wb.end-wb.from < writebackBytes {
		return
	}
	from, n64 := wb.from, wb.end-wb.from
	var err error
	if cerr := wb.conn.Control(func(fd uintptr) {
		err = unix.SyncFileRange(int(fd), from, n64, unix.SYNC_FILE_RANGE_WRITE)
	}); cerr != nil || err != nil {
		wb.conn = nil // not supported here: stop trying
		return
	}
	wb.from = wb.end
}
