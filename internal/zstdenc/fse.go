package zstdenc

import (
	"encoding/binary"
	"math"
	"math/bits"
)

// bitWriter appends bits least significant first, as zstd's backward
// bit streams are written.
type bitWriter struct {
	acc uint64
	n   uint
	out []byte
}

// add appends the low n bits of v (n <= 32).
func (w *bitWriter) add(v uint32, n uint) {
	w.acc |= uint64(v&(1<<n-1)) << w.n
	w.n += n
	if w.n >= 32 {
		w.out = binary.LittleEndian.AppendUint32(w.out, uint32(w.acc))
		w.acc >>= 32
		w.n -= 32
	}
}

// close writes the end mark (a 1 bit) and the last partial byte.
func (w *bitWriter) close() []byte {
	w.add(1, 1)
	for w.n > 0 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.n -= min(w.n, 8)
	}
	return w.out
}

// fseTable is an FSE encoding table for one alphabet.
type fseTable struct {
	log   uint
	state []uint16 // next states, grouped by symbol in cell order
	sym   [maxFSESymbols]struct {
		deltaBits  uint32
		deltaState int32
		first      uint16 // a state whose cell holds the symbol
	}
	norm [maxFSESymbols]int16
	n    int // alphabet size (last symbol with a cell + 1)
}

const (
	maxFSESymbols = 53
	minTableLog   = 5
)

// build fills t from normalized counts norm (summing to 1<<log, -1 for
// "less than one" symbols that take one cell at the top of the table).
func (t *fseTable) build(norm []int16, log uint) {
	size := 1 << log
	t.log = log
	t.n = len(norm)
	copy(t.norm[:], norm)
	for i := len(norm); i < maxFSESymbols; i++ {
		t.norm[i] = 0
	}
	var cells [512]uint8
	high := size - 1
	for s, c := range norm {
		if c == -1 {
			cells[high] = uint8(s)
			high--
		}
	}
	step := size>>1 + size>>3 + 3
	mask := size - 1
	pos := 0
	for s, c := range norm {
		for i := 0; i < int(c); i++ {
			cells[pos] = uint8(s)
			pos = (pos + step) & mask
			for pos > high {
				pos = (pos + step) & mask
			}
		}
	}
	var cumul [maxFSESymbols + 1]int
	for s, c := range norm {
		n := int(c)
		if c == -1 {
			n = 1
		}
		cumul[s+1] = cumul[s] + n
	}
	if cap(t.state) < size {
		t.state = make([]uint16, size)
	}
	t.state = t.state[:size]
	next := cumul
	for u := 0; u < size; u++ {
		s := cells[u]
		t.state[next[s]] = uint16(size + u)
		next[s]++
	}
	for s, c := range norm {
		e := &t.sym[s]
		switch {
		case c == 0:
			e.deltaBits, e.deltaState = 0, 0
			continue
		case c == -1 || c == 1:
			e.deltaBits = uint32(log<<16) - uint32(size)
			e.deltaState = int32(cumul[s]) - 1
		default:
			maxOut := log - uint(bits.Len32(uint32(c-1))-1)
			minPlus := uint32(c) << maxOut
			e.deltaBits = uint32(maxOut<<16) - minPlus
			e.deltaState = int32(cumul[s]) - int32(c)
		}
		e.first = t.state[cumul[s]]
	}
}

// encode writes the bits that take the decoder from symbol s's cell to
// state and returns the encoder state for s.
func (t *fseTable) encode(w *bitWriter, state uint32, s uint8) uint32 {
	e := &t.sym[s]
	nb := (state + e.deltaBits) >> 16
	w.add(state, uint(nb))
	return uint32(t.state[int32(state>>nb)+e.deltaState])
}

// bitCost returns the cost, in 1/256 bits, of coding symbols with the
// counts in hist using normalized counts norm of table log log.
func bitCost(hist []uint32, norm []int16, log uint) int {
	cost := 0.0
	for s, c := range hist {
		if c == 0 {
			continue
		}
		if s >= len(norm) || norm[s] == 0 {
			return math.MaxInt32
		}
		n := float64(norm[s])
		if n < 0 {
			n = 1
		}
		cost += float64(c) * (float64(log) - math.Log2(n))
	}
	return int(cost * 256)
}

// normalize computes normalized counts summing to 1<<log for hist (total
// symbols) into norm, giving every present symbol at least one cell and
// placing the remaining cells where they save the most bits.
func normalize(norm []int16, hist []uint32, total int, log uint) {
	size := 1 << log
	sum := 0
	for s, c := range hist {
		if c == 0 {
			norm[s] = 0
			continue
		}
		v := int(math.Round(float64(c) * float64(size) / float64(total)))
		v = max(v, 1)
		norm[s] = int16(v)
		sum += v
	}
	for sum > size {
		best, bestLoss := -1, math.Inf(1)
		for s, c := range hist {
			if norm[s] > 1 {
				n := float64(norm[s])
				if loss := float64(c) * math.Log2(n/(n-1)); loss < bestLoss {
					best, bestLoss = s, loss
				}
			}
		}
		norm[best]--
		sum--
	}
	for sum < size {
		best, bestGain := -1, -1.0
		for s, c := range hist {
			if c > 0 {
				n := float64(norm[s])
				if gain := float64(c) * math.Log2((n+1)/n); gain > bestGain {
					best, bestGain = s, gain
				}
			}
		}
		norm[best]++
		sum++
	}
}

// appendNCount appends the FSE table description (RFC 8878 4.1.1) of norm.
func appendNCount(dst []byte, norm []int16, log uint) []byte {
	size := 1 << log
	remaining := size + 1
	threshold := size
	nbBits := log + 1
	var acc uint64 = uint64(log - minTableLog)
	n := uint(4)
	flush := func() {
		for n >= 8 {
			dst = append(dst, byte(acc))
			acc >>= 8
			n -= 8
		}
	}
	prev0 := false
	s := 0
	for s < len(norm) && remaining > 1 {
		if prev0 {
			start := s
			for s < len(norm) && norm[s] == 0 {
				s++
			}
			for s >= start+24 {
				start += 24
				acc |= 0xFFFF << n
				n += 16
				flush()
			}
			for s >= start+3 {
				start += 3
				acc |= 3 << n
				n += 2
			}
			acc |= uint64(s-start) << n
			n += 2
			flush()
		}
		count := int(norm[s])
		s++
		mx := 2*threshold - 1 - remaining
		if count < 0 {
			remaining += count
		} else {
			remaining -= count
		}
		count++
		if count >= threshold {
			count += mx
		}
		acc |= uint64(count) << n
		n += nbBits
		if count < mx {
			n--
		}
		prev0 = count == 1
		for remaining < threshold {
			nbBits--
			threshold >>= 1
		}
		flush()
	}
	for n > 0 {
		dst = append(dst, byte(acc))
		acc >>= 8
		n -= min(n, 8)
	}
	return dst
}
