package erofs

// StoredAt implements image.StoredRanger: plain (uncompressed) extents,
// including inline tails, are stored as they are in the image.
func (f fileData) StoredAt(off int64, n int) (int64, int, bool) {
	if off < 0 || off >= f.in.size || n <= 0 {
		return 0, 0, false
	}
	e, err := f.rd.mapExtent(f.in, off)
	if err != nil || e.kind != extRaw || off < e.la || off >= e.la+e.llen {
		return 0, 0, false
	}
	k := min(int64(n), e.la+e.llen-off, f.in.size-off)
	pa := e.pa + (off - e.la)
	if pa < 0 || pa > f.rd.size || k > f.rd.size-pa {
		return 0, 0, false
	}
	return pa, int(k), true
}
