package erofs

import (
	"bytes"
	"fmt"
	"os"
)

// Fragment deduplication (as mkfs.erofs's -E fragments does by default):
// a file tail that equals the end of a fragment already in the packed
// inode points into that fragment instead of being appended again. Tails
// often repeat across files (licence footers, the ends of generated
// files, small files that are a suffix of others).

const (
	// fragKeyLen is the length of the suffix fragments are indexed by;
	// shorter tails are always appended.
	fragKeyLen = 16
	// fragCandidates bounds the earlier fragments compared with a tail
	// (the newest ones sharing its last fragKeyLen bytes).
	fragCandidates = 8
)

// fragRef is a fragment in the packed inode's data: its end offset and
// length.
type fragRef struct {
	end int64
	n   int
}

// addFragment stores a file's tail in the packed inode's data and returns
// its offset there: the offset of an identical run at the end of an
// earlier fragment, or the end of the data, where b is appended.
func (wr *Writer) addFragment(b []byte) (int64, error) {
	if wr.packedFile == nil {
		f, err := os.CreateTemp("", "closurefs-erofs-packed-*")
		if err != nil {
			return 0, fmt.Errorf("erofs: fragments: %w", err)
		}
		wr.packedFile = f
		wr.fragEnds = make(map[[fragKeyLen]byte][]fragRef)
	}
	var key [fragKeyLen]byte
	if len(b) >= fragKeyLen {
		copy(key[:], b[len(b)-fragKeyLen:])
		refs := wr.fragEnds[key]
		for i, k := len(refs)-1, 0; i >= 0 && k < fragCandidates; i-- {
			r := refs[i]
			if r.n < len(b) {
				continue
			}
			k++
			if cap(wr.fragBuf) < len(b) {
				wr.fragBuf = make([]byte, len(b))
			}
			old := wr.fragBuf[:len(b)]
			if _, err := wr.packedFile.ReadAt(old, r.end-int64(len(b))); err != nil {
				return 0, fmt.Errorf("erofs: fragments: %w", err)
			}
			if bytes.Equal(old, b) {
				return r.end - int64(len(b)), nil
			}
		}
	}
	off := wr.packedSize
	if _, err := wr.packedFile.Write(b); err != nil {
		return 0, fmt.Errorf("erofs: fragments: %w", err)
	}
	wr.packedSize += int64(len(b))
	if len(b) >= fragKeyLen {
		wr.fragEnds[key] = append(wr.fragEnds[key], fragRef{end: wr.packedSize, n: len(b)})
	}
	return off, nil
}
