package zstdenc

import (
	"errors"
	"math/bits"

	"github.com/klauspost/compress/huff0"
)

// seq is one zstd sequence: litLen literals, then a match of matchLen
// bytes at the offset that offVal codes (1-3 repeat offsets, else
// offset+3).
type seq struct {
	litLen, matchLen, offVal uint32
}

// Symbol compression modes.
const (
	modePredefined = 0
	modeRLE        = 1
	modeFSE        = 2
)

// Predefined tables, built once by init and read-only after.
var llPre, mlPre, ofPre fseTable

func init() {
	llPre.build(llDefault, llDefaultLog)
	mlPre.build(mlDefault, mlDefaultLog)
	ofPre.build(ofDefault, ofDefaultLog)
}

// appendLiterals appends the literals section for lits.
func (e *Encoder) appendLiterals(dst, lits []byte) []byte {
	n := len(lits)
	rawSize := n + 1
	if n >= 32 {
		rawSize++
	}
	if n >= 4096 {
		rawSize++
	}
	if n > 1 && allSame(lits) {
		return append(appendLitHeader(dst, 1, n), lits[0])
	}
	if n >= 32 {
		s := &e.huff
		s.Reuse = huff0.ReusePolicyNone
		var out []byte
		var err error
		single := n <= 1023
		if single {
			out, _, err = huff0.Compress1X(lits, s)
		} else {
			out, _, err = huff0.Compress4X(lits, s)
		}
		if err == nil {
			hdr := 5
			switch {
			case single:
				hdr = 3
			case n < 1024 && len(out) < 1024:
				hdr = 3
			case n < 16384 && len(out) < 16384:
				hdr = 4
			}
			if hdr+len(out) < rawSize {
				c := uint64(len(out))
				var v uint64
				switch {
				case single:
					v = 2 | 0<<2 | uint64(n)<<4 | c<<14
				case hdr == 3:
					v = 2 | 1<<2 | uint64(n)<<4 | c<<14
				case hdr == 4:
					v = 2 | 2<<2 | uint64(n)<<4 | c<<18
				default:
					v = 2 | 3<<2 | uint64(n)<<4 | c<<22
				}
				for i := 0; i < hdr; i++ {
					dst = append(dst, byte(v>>(8*i)))
				}
				return append(dst, out...)
			}
		} else if !errors.Is(err, huff0.ErrIncompressible) && !errors.Is(err, huff0.ErrUseRLE) {
			// Any other failure also falls back to raw literals.
			_ = err
		}
	}
	return append(appendLitHeader(dst, 0, n), lits...)
}

// appendLitHeader appends a raw (typ 0) or RLE (typ 1) literals header.
func appendLitHeader(dst []byte, typ byte, n int) []byte {
	switch {
	case n < 32:
		return append(dst, typ|byte(n)<<3)
	case n < 4096:
		return append(dst, typ|1<<2|byte(n<<4), byte(n>>4))
	default:
		return append(dst, typ|3<<2|byte(n<<4), byte(n>>4), byte(n>>12))
	}
}

func allSame(b []byte) bool {
	for _, c := range b[1:] {
		if c != b[0] {
			return false
		}
	}
	return true
}

// chooseTable picks the cheapest way to code the symbols in hist (n
// symbols): predefined, RLE or a new table (written to dst). It returns
// the mode, the table to encode with and dst.
func chooseTable(dst []byte, t *fseTable, pre *fseTable, hist []uint32, n int, maxLog uint) (byte, *fseTable, []byte) {
	last, distinct := 0, 0
	for s, c := range hist {
		if c > 0 {
			last = s
			distinct++
		}
	}
	if distinct == 1 {
		if n > 2 || last >= pre.n || pre.norm[last] == 0 {
			t.build(rleNorm(last), 0)
			return modeRLE, t, append(dst, byte(last))
		}
	}
	best := bitCost(hist, pre.norm[:pre.n], pre.log)
	mode := byte(modePredefined)
	if n <= 4 && best < 1<<30 {
		return mode, pre, dst
	}
	var bestNorm [maxFSESymbols]int16
	var norm [maxFSESymbols]int16
	bestLog := uint(0)
	lo := max(minTableLog, uint(bits.Len(uint(distinct))))
	hi := min(maxLog, max(lo, uint(bits.Len(uint(n)))))
	for log := lo; log <= hi; log++ {
		normalize(norm[:last+1], hist[:last+1], n, log)
		var hdr [96]byte
		h := appendNCount(hdr[:0], norm[:last+1], log)
		c := bitCost(hist[:last+1], norm[:last+1], log) + len(h)*8*256
		if c < best {
			best, bestLog, bestNorm = c, log, norm
			mode = modeFSE
		}
	}
	if mode == modePredefined {
		return mode, pre, dst
	}
	t.build(bestNorm[:last+1], bestLog)
	return modeFSE, t, appendNCount(dst, bestNorm[:last+1], bestLog)
}

// rleNorm returns a one-cell distribution for symbol s (table log 0), a
// table whose every encode emits no bits.
func rleNorm(s int) []int16 {
	var norm [maxFSESymbols]int16
	norm[s] = 1
	return norm[:s+1]
}

// appendSequences appends the sequences section for seqs.
func (e *Encoder) appendSequences(dst []byte, seqs []seq) []byte {
	n := len(seqs)
	switch {
	case n < 128:
		dst = append(dst, byte(n))
	case n < 0x7F00:
		dst = append(dst, byte(n>>8)+128, byte(n))
	default:
		dst = append(dst, 255, byte(n-0x7F00), byte((n-0x7F00)>>8))
	}
	if n == 0 {
		return dst
	}
	var llH [36]uint32
	var mlH [53]uint32
	var ofH [maxOfCode + 1]uint32
	codes := e.codes[:0]
	for _, s := range seqs {
		lc, mc, oc := llCode(s.litLen), mlCode(s.matchLen), ofCode(s.offVal)
		llH[lc]++
		mlH[mc]++
		ofH[oc]++
		codes = append(codes, [3]uint8{lc, mc, oc})
	}
	e.codes = codes
	modePos := len(dst)
	dst = append(dst, 0)
	var llM, ofM, mlM byte
	var llT, ofT, mlT *fseTable
	llM, llT, dst = chooseTable(dst, &e.llT, &llPre, llH[:], n, llMaxLog)
	ofM, ofT, dst = chooseTable(dst, &e.ofT, &ofPre, ofH[:], n, ofMaxLog)
	mlM, mlT, dst = chooseTable(dst, &e.mlT, &mlPre, mlH[:], n, mlMaxLog)
	dst[modePos] = llM<<6 | ofM<<4 | mlM<<2

	w := &e.bw
	w.acc, w.n, w.out = 0, 0, dst
	last := codes[n-1]
	s := seqs[n-1]
	llS := uint32(llT.sym[last[0]].first)
	mlS := uint32(mlT.sym[last[1]].first)
	ofS := uint32(ofT.sym[last[2]].first)
	w.add(s.litLen-llBase[last[0]], uint(llBits[last[0]]))
	w.add(s.matchLen-mlBase[last[1]], uint(mlBits[last[1]]))
	w.add(s.offVal-1<<last[2], uint(last[2]))
	for i := n - 2; i >= 0; i-- {
		c := codes[i]
		s := seqs[i]
		ofS = ofT.encode(w, ofS, c[2])
		mlS = mlT.encode(w, mlS, c[1])
		llS = llT.encode(w, llS, c[0])
		w.add(s.litLen-llBase[c[0]], uint(llBits[c[0]]))
		w.add(s.matchLen-mlBase[c[1]], uint(mlBits[c[1]]))
		w.add(s.offVal-1<<c[2], uint(c[2]))
	}
	w.add(mlS, mlT.log)
	w.add(ofS, ofT.log)
	w.add(llS, llT.log)
	return w.close()
}
