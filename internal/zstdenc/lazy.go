package zstdenc

import "math/bits"

// cand is a match candidate of the lazy parser.
type cand struct {
	len, off uint32
	gain     int32
}

// lazyGain estimates what a match of length l coded by offset value ov
// saves: about 4 units per byte covered, less the offset's bits (C
// zstd's lazy heuristic).
func lazyGain(l, ov uint32) int32 {
	return int32(4*l) - int32(bits.Len32(ov))
}

// bestAt searches position p (adding it to the match finder) and
// returns the candidate of the best gain among the repeat offsets reps
// (ll0: no literals before p) and the match finder's matches.
func (e *Encoder) bestAt(src []byte, p int, reps [3]uint32, ll0 bool) cand {
	var best cand
	end := e.blockEnd
	a := src[p:end]
	for k := 0; k < 3; k++ {
		off := repOffset(reps, k, ll0)
		if off == 0 || int(off) > p {
			continue
		}
		if l := uint32(matchLen(src[p-int(off):], a)); l >= minMatch {
			if g := lazyGain(l, uint32(k+1)); g > best.gain {
				best = cand{l, off, g}
			}
		}
	}
	e.matches = e.matches[:0]
	e.first = 0
	e.search(src, p, false)
	for _, m := range e.matches {
		ov := offsetValue(reps, m.off, ll0)
		if m.len == minMatch && ov > 3 && bits.Len32(ov) > 10 {
			continue // a far 3-byte match costs about what it saves
		}
		if g := lazyGain(m.len, ov); g > best.gain {
			best = cand{m.len, m.off, g}
		}
	}
	return best
}

// lazy parses src[start:end] with lazy matching, updating reps.
func (e *Encoder) lazy(src []byte, start, end int, reps *[3]uint32) ([]seq, []byte) {
	e.blockEnd = end
	seqs := e.seqs[:0]
	lits := e.lits[:0]
	r := *reps
	lit0 := start
	p := start
	cur := e.bestAt(src, p, r, true)
	for p < end {
		if cur.len < minMatch {
			p++
			if p < end {
				cur = e.bestAt(src, p, r, p == lit0)
			}
			continue
		}
		// Look one and two positions ahead for a clearly better match.
		for bonus := int32(2); bonus <= 5 && p+1 < end; bonus += 3 {
			nxt := e.bestAt(src, p+1, r, false)
			if nxt.len < minMatch || nxt.gain <= cur.gain+bonus {
				// p+1 is in the match finder now: the match insertion
				// below starts after it.
				e.insertMatch(src, p+2, p+int(cur.len))
				goto emit
			}
			p++
			cur = nxt
		}
		e.insertMatch(src, p+1, p+int(cur.len))
	emit:
		// Extend a new offset's match backwards over the literals.
		if ov := offsetValue(r, cur.off, p == lit0); ov > 3 {
			for p > lit0 && int(cur.off) < p && src[p-1] == src[p-1-int(cur.off)] {
				p--
				cur.len++
			}
		}
		ll0 := p == lit0
		ov := offsetValue(r, cur.off, ll0)
		lits = append(lits, src[lit0:p]...)
		seqs = append(seqs, seq{litLen: uint32(p - lit0), matchLen: cur.len, offVal: ov})
		r = updateReps(r, ov, ll0)
		p += int(cur.len)
		lit0 = p
		if p < end {
			cur = e.bestAt(src, p, r, true)
		}
	}
	lits = append(lits, src[lit0:end]...)
	e.seqs, e.lits = seqs, lits
	*reps = r
	return seqs, lits
}

// insertMatch adds positions [from, to) (inside a chosen match) to the
// match finder without searching.
func (e *Encoder) insertMatch(src []byte, from, to int) {
	for q := from; q < to; q++ {
		e.search(src, q, true)
	}
}
